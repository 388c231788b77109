// Argument checks shared by the kernel entry points (target-independent).
#pragma once

#include "kernels/kernels.h"

namespace quantlab::kernels {

// Throws quantlab::Error (internal check) when the view is not something the kernels can read:
// null pointers, unknown type, affine bits outside 2..8, group size not 32/64/128, cols not a multiple
// of the group size, or scales of a non-float dtype.
void check_matrix_view(const MatrixView& w, const char* op);

}  // namespace quantlab::kernels
