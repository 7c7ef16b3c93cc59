#include "modules.h"

namespace kvf {
void InitVerbs(Napi::Env env, Napi::Object exports) {}
}  // namespace kvf
