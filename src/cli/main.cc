#include "cli/app.h"

int main(int argc, char** argv) { return quantlab::cli::run(argc, argv); }
