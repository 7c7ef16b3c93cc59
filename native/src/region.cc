#include "modules.h"

namespace kvf {
void InitRegion(Napi::Env env, Napi::Object exports) {}
}  // namespace kvf
