#include "modules.h"

namespace kvf {
void InitCopy(Napi::Env env, Napi::Object exports) {}
}  // namespace kvf
