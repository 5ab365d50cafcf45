// The library's entry point, called by mx.library.load: MXNet 1.9 or newer.
#include "common.h"

using namespace mxnet::ext;

MXReturnValue initialize(int version) {
  return version >= 10900 ? MX_SUCCESS : MX_FAIL;
}
