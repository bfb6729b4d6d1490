"""The whole harness on a GPU (run only where one is present): same results as on the CPU, timed on the GPU."""
import pytest
import torch

from saliency_bench import method_plugin
from saliency_bench.run.options import RunOptions
from saliency_bench.run.pipeline import run_benchmark

CHECKS = ["pointing_game", "restricted_pointing_game", "class_sensitivity", "randomization"]


def _values(report) -> dict:
    return {
        (method, check): {k: m["value"] for k, m in report.store.get(method, check)["metrics"].items()}
        for method in report.methods for check in report.checks
    }


@pytest.fixture
def no_tf32():
    """Full float32 convolutions and matmuls on the GPU for the test (cuDNN would use TF32 by default)."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU")
def test_run_on_cuda_matches_cpu_and_times_on_the_gpu(fakes, tmp_path, no_tf32):
    from saliency_bench_aggregation import GradCAM
    from saliency_bench_propagation import Gradient

    # edge never touches the model; gradient and gradcam run hooks, backward passes and the cascade on the GPU
    for name, method in (("gradient", Gradient()), ("gradcam", GradCAM())):
        fakes.register(method_plugin(method), name=f"cuda-{name}")

    def run(device):
        options = RunOptions(methods=["edge", "gradient", "gradcam"], model="fake_vgg", checks=CHECKS,
                             device=device, batch_size=5, out=str(tmp_path / device), progress=False, speed=True,
                             speed_batch_size=4, speed_rounds=1)
        return run_benchmark(options, log=lambda m: None)

    try:
        on_cpu, on_gpu = run("cpu"), run("cuda")
    finally:
        for name in ("gradient", "gradcam"):
            fakes.unregister(name=f"cuda-{name}")
    assert not on_gpu.failures and on_gpu.suite.device.type == "cuda"
    assert next(on_gpu.suite.model.network.parameters()).is_cuda
    assert all(on_gpu.store.get(n, "speed")["device"].startswith("cuda (") for n in ("edge", "gradient", "gradcam"))
    cpu, gpu = _values(on_cpu), _values(on_gpu)
    assert cpu.keys() == gpu.keys()
    for key in cpu:
        for metric, value in cpu[key].items():
            # HOG bins orientations with a discontinuity at 0/180 degrees: on an up-sampled coarse map a row
            # gradient that is exactly 0 on the CPU is -4e-9 on the GPU, which moves pixels between bins 0 and 8.
            # Measured on an H200 (random fake model, 12 images): maps within 4e-9, raw Spearman within 1e-4,
            # HOG Spearman per image within 0.035, its mean within 0.013.
            tolerance = 0.02 if "hog" in metric else 1e-3
            assert gpu[key][metric] == pytest.approx(value, abs=tolerance), (key, metric)
