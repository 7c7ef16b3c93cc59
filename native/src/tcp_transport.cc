#include "modules.h"

namespace kvf {
void InitTcp(Napi::Env env, Napi::Object exports) {}
}  // namespace kvf
