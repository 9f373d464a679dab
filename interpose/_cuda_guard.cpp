// Give c10 a CUDA device guard and CUDA hooks that never reach a CUDA driver.
//
// CPU builds of torch have neither: autograd (InputMetadata, the engine's device threads,
// InputBuffer) asks c10 for the CUDA device guard of every cuda tensor that needs grad, and
// at::accelerator for the current stream, and the process aborts. CUDA builds have both, and
// both call the driver (cudaGetDevice, stream pools, cudaGetDeviceCount, device properties): on a
// machine without a GPU that raises "CUDA driver version is insufficient", on one with a GPU it
// would touch the real device. So on either build this registers c10's FakeGuardImpl<CUDA> as the
// CUDA guard and makes the CUDA hooks the simulated ones below: CUDA present with the simulated
// GPU's compute capability, and (CUDA builds) the build's cuDNN, so ATen's CompositeImplicit code
// (convolution backend selection, batch norm) takes the cuDNN paths a GPU takes. Loaded with
// ctypes by cuda_guard.py.
#include <ATen/detail/CUDAHooksInterface.h>
#include <cstring>
#include <c10/core/impl/DeviceGuardImplInterface.h>
#include <c10/core/impl/FakeGuardImpl.h>
#include <torch/csrc/distributed/c10d/reducer_timer.hpp>
#include <unordered_map>

namespace {
c10::impl::FakeGuardImpl<c10::DeviceType::CUDA> sim_cuda_guard;

// What the simulated GPU and the build report (set by phantora_configure).
struct SimInfo {
  int major = 9;               // compute capability of the simulated GPU
  long cudnn_version = 0;      // CUDNN_VERSION the build was compiled with; 0: no cuDNN (CPU builds)
  long cudnn_runtime = 0;      // cudnnGetVersion() of the library the build loads
  long cudart_version = 0;     // CUDA runtime the build was compiled with; 0: none
  double bn_min_epsilon = 0.0; // CUDNN_BN_MIN_EPSILON
};
SimInfo sim;

struct SimCUDAHooks final : at::CUDAHooksInterface {
  explicit SimCUDAHooks(at::CUDAHooksArgs) {}
  bool hasCUDA() const override { return true; }
  bool isBuilt() const override { return true; }
  bool isAvailable() const override { return true; }
  bool hasPrimaryContext(c10::DeviceIndex) const override { return true; }
  void init() const override {}
  c10::DeviceIndex deviceCount() const override { return sim_cuda_guard.deviceCount(); }
  int getNumGPUs() const override { return sim_cuda_guard.deviceCount(); }
  c10::DeviceIndex current_device() const override { return sim_cuda_guard.getDevice().index(); }
  c10::DeviceIndex getCurrentDevice() const override { return sim_cuda_guard.getDevice().index(); }
  void setCurrentDevice(c10::DeviceIndex d) const override {
    sim_cuda_guard.setDevice(c10::Device(c10::DeviceType::CUDA, d));
  }
  c10::DeviceIndex exchangeDevice(c10::DeviceIndex d) const override {
    return sim_cuda_guard.exchangeDevice(c10::Device(c10::DeviceType::CUDA, d)).index();
  }
  c10::DeviceIndex maybeExchangeDevice(c10::DeviceIndex d) const override { return exchangeDevice(d); }
  bool isPinnedPtr(const void*) const override { return false; }
  void deviceSynchronize(c10::DeviceIndex) const override {}
  // cuDNN and CUDA runtime: the build's answers, with the simulated GPU's capability where
  // the real hooks read the device's properties (CUDAHooks.cpp).
  bool hasCUDART() const override { return sim.cudart_version > 0; }
  long versionCUDART() const override { return sim.cudart_version; }
  bool hasCuDNN() const override { return sim.cudnn_version > 0; }
  bool compiledWithCuDNN() const override { return sim.cudnn_version > 0; }
  bool supportsDilatedConvolutionWithCuDNN() const override { return sim.cudnn_version > 0; }
  bool supportsDepthwiseConvolutionWithCuDNN() const override { return sim.cudnn_version > 0 && sim.major >= 7; }
  bool supportsBFloat16ConvolutionWithCuDNNv8() const override { return sim.cudnn_version > 0 && sim.major >= 8; }
  bool supportsBFloat16RNNWithCuDNN() const override { return sim.cudnn_version >= 91300 && sim.major >= 8; }
  long versionCuDNN() const override {
    TORCH_CHECK(sim.cudnn_version > 0, "Cannot query cuDNN version without ATen_cuda library. ", at::CUDA_HELP);
    return sim.cudnn_version;
  }
  long versionRuntimeCuDNN() const override {
    TORCH_CHECK(sim.cudnn_version > 0, "Cannot query cuDNN version without ATen_cuda library. ", at::CUDA_HELP);
    return sim.cudnn_runtime;
  }
  double batchnormMinEpsilonCuDNN() const override {
    TORCH_CHECK(sim.cudnn_version > 0, "Cannot query CUDNN_BN_MIN_EPSILON without ATen_cuda library. ", at::CUDA_HELP);
    return sim.bn_min_epsilon;
  }
};

// DDP's reducer times each of the first iterations with a c10d::Timer made by
// c10d::TimerRegistry() for the parameters' device; a CUDA build registers a CudaTimer (CUDA
// events on the current stream: the driver). A CPU build registers none for CUDA, so the reducer
// has no timer and skips the timing; while simulating, a CUDA build gets the same. The registry
// keeps its creators private: they are reached through the explicit-instantiation rule (access
// checks do not apply to the template arguments of an explicit instantiation).
using TimerReg = std::remove_pointer_t<decltype(c10d::TimerRegistry())>;
using TimerCreators = std::unordered_map<c10::DeviceType, TimerReg::Creator>;
struct CreatorsTag {
  using type = TimerCreators TimerReg::*;
  friend type creators_member(CreatorsTag);
};
template <typename Tag, typename Tag::type M>
struct Expose {
  friend typename Tag::type creators_member(Tag) { return M; }
};
template struct Expose<CreatorsTag, &TimerReg::registry_>;
TimerReg::Creator build_cuda_timer;  // the build's CUDA timer creator while it is taken out
bool cuda_timer_taken = false;

void set_sim_timer(bool on) {
  auto& creators = c10d::TimerRegistry()->*creators_member(CreatorsTag{});
  if (on && !cuda_timer_taken) {
    auto it = creators.find(c10::DeviceType::CUDA);
    if (it != creators.end()) {
      build_cuda_timer = std::move(it->second);
      creators.erase(it);
      cuda_timer_taken = true;
    }
  } else if (!on && cuda_timer_taken) {
    creators[c10::DeviceType::CUDA] = std::move(build_cuda_timer);
    cuda_timer_taken = false;
  }
}

const c10::impl::DeviceGuardImplInterface* build_guard = nullptr;  // the build's own CUDA guard (CUDA builds)
bool build_guard_seen = false;
void* build_hooks_vptr = nullptr;  // the build's own CUDA hooks class (CPU builds: the stub interface)
}  // namespace

extern "C" void phantora_configure(int major, long cudnn_version, long cudnn_runtime, long cudart_version,
                                   double bn_min_epsilon) {
  sim = SimInfo{major, cudnn_version, cudnn_runtime, cudart_version, bn_min_epsilon};
}

// Which CUDA hooks getCUDAHooks() answers with (phantora_set_sim_cuda's argument).
enum HooksMode : int {
  kBuildHooks = 0,  // the build's own: real CUDAHooks (CUDA builds) or the stub interface (CPU builds)
  kSimHooks = 1,    // the simulated GPU (SimCUDAHooks)
  kNoCudaHooks = 2, // the stub interface (no CUDA, touches nothing): for C++ that would otherwise
                    // start real CUDA machinery when it sees CUDA present (the profiler's CUPTI)
};

// kSimHooks: the fake guard is the CUDA guard, the hooks are the simulated ones and DDP's CUDA
// timer is taken out. kBuildHooks: the build's hooks, timer and (CUDA builds) guard come back; a
// CPU build keeps the fake guard for good (fake cuda tensors may outlive the shim, and a CPU build
// has no other). kNoCudaHooks: as kSimHooks with the stub hooks, for a short stretch.
// getCUDAHooks() built its hooks object (the build's CUDAHooks, or the stub interface on CPU
// builds) at first use and keeps it in a function-local static we cannot reach; all these classes
// are stateless apart from the vtable pointer, so we retarget that pointer in place. The build's
// own hooks are never called here (on a CUDA build even hasCUDA() asks the driver).
// Returns hasCUDA() afterwards (0 for kBuildHooks, without asking).
extern "C" int phantora_set_sim_cuda(int mode) {
  constexpr auto idx = static_cast<std::size_t>(c10::DeviceType::CUDA);
  auto& slot = c10::impl::device_guard_impl_registry[idx];
  if (!build_guard_seen) {
    build_guard = slot.load();
    build_guard_seen = true;
  }
  slot.store(mode != kBuildHooks || build_guard == nullptr ? &sim_cuda_guard : build_guard);
  set_sim_timer(mode != kBuildHooks);
  static_assert(sizeof(SimCUDAHooks) == sizeof(at::CUDAHooksInterface));
  auto* hooks = const_cast<at::CUDAHooksInterface*>(&at::detail::getCUDAHooks());
  if (build_hooks_vptr == nullptr) {
    std::memcpy(&build_hooks_vptr, hooks, sizeof(void*));
  }
  if (mode == kSimHooks) {
    SimCUDAHooks simhooks{at::CUDAHooksArgs{}};
    std::memcpy(static_cast<void*>(hooks), &simhooks, sizeof(void*));
  } else if (mode == kNoCudaHooks) {
    at::CUDAHooksInterface stub;
    std::memcpy(static_cast<void*>(hooks), &stub, sizeof(void*));
  } else {
    std::memcpy(static_cast<void*>(hooks), &build_hooks_vptr, sizeof(void*));
  }
  return mode == kBuildHooks ? 0 : (at::detail::getCUDAHooks().hasCUDA() ? 1 : 0);
}

// The current device as C++ sees it (Tensor.cuda(), .to("cuda"), device guards fill a
// missing index from here): kept equal to torch.cuda.current_device() by cuda_guard.py.
extern "C" void phantora_set_guard_device(int index) {
  sim_cuda_guard.uncheckedSetDevice(c10::Device(c10::DeviceType::CUDA, static_cast<c10::DeviceIndex>(index)));
}
