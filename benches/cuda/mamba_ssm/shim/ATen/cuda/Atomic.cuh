// Stands in for PyTorch's header of this name: see ../../torch_shim.h.
#pragma once
#include "../../torch_shim.h"
