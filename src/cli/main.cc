#include "cli/app.h"
#include "core/interrupt.h"

int main(int argc, char** argv) {
  quantlab::install_interrupt_cleanup();  // before any thread starts, so every thread inherits the mask
  return quantlab::cli::run(argc, argv);
}
