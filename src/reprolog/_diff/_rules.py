"""Which category a recorded difference belongs to, and how much weight it has in the ranking."""

from __future__ import annotations

import re

from reprolog._diff._model import Category

# Ranking: the weight says how likely a difference is to change the numbers a training produces.
#  - Data (100): different examples change everything downstream, usually by the most.
#  - Code (84-92): a different commit or uncommitted edit can change any part of the computation;
#    the commit itself outranks one edited or untracked file, which outranks the bare dirty flag.
#  - Hyperparameters (80): chosen knobs (lr, batch size, epochs) change the optimisation path by
#    design, though a code or data change can move results further.
#  - Seeds and RNG state (70): change initialisation and shuffling; curves differ, usually within
#    run-to-run noise of the final metric.
#  - Determinism settings (60): allow or forbid non-deterministic kernels; changes results in the
#    last bits, and only on hardware that has such kernels (mostly GPUs).
#  - ML packages (50-58): torch/CUDA/cuDNN/numpy/framework versions change kernels, defaults and
#    numerics; Python itself (45) mostly changes hash seeds and container ordering.
#  - Threads and hardware (30-42): thread counts change reduction order (last-bit differences);
#    a different CPU/GPU model changes kernels chosen; the host name alone changes nothing.
#  - Other packages (20): rarely on the numeric path.
#  - Other recorded facts (15), the command line (10; its meaningful parts are normally recorded as
#    params too) and tags/experiment (5, labels that change nothing).
W_DATA_FINGERPRINT = 100.0
W_DATA = 96.0
W_CODE_COMMIT = 92.0
W_CODE_FILE = 88.0
W_CODE_SCRIPT = 87.0
W_CODE_DIRTY = 84.0
W_CODE_OTHER = 30.0
W_PARAM = 80.0
W_SEED = 70.0
W_DETERMINISM = 60.0
W_DETERMINISM_RISKS = 58.0
W_ACCEL_LIBS = 58.0
W_ML_PACKAGE = 55.0
W_ML_PACKAGE_MINOR = 50.0
W_PYTHON = 45.0
W_THREADS = 42.0
W_ACCELERATOR = 40.0
W_HARDWARE = 35.0
W_HOST = 30.0
W_PACKAGE = 20.0
W_OTHER = 15.0
W_COMMAND = 10.0
W_COMMAND_CWD = 8.0
W_LABEL = 5.0

# Packages on the numeric path of a training, most direct first: the tensor libraries and their
# GPU runtimes, then array libraries, then the frameworks that pick defaults for you.
ML_PACKAGES: tuple[str, ...] = (
    "torch", "jax", "jaxlib", "tensorflow", "tensorflow-cpu", "tensorflow-gpu",
    "nvidia-cudnn-cu12", "nvidia-cudnn-cu11", "nvidia-cublas-cu12", "nvidia-cublas-cu11",
    "nvidia-cuda-runtime-cu12", "nvidia-cuda-runtime-cu11", "triton", "numpy", "scipy",
    "lightning", "pytorch-lightning", "transformers", "accelerate", "keras", "scikit-learn",
    "torchvision", "torchaudio", "tokenizers", "datasets", "xgboost", "lightgbm", "catboost",
    "deepspeed", "flash-attn", "xformers", "peft", "bitsandbytes", "timm", "torchmetrics",
    "safetensors", "pandas", "pyarrow", "optax", "flax", "onnxruntime", "mkl", "intel-openmp",
)  # fmt: skip
_ML_RANK = {name: i for i, name in enumerate(ML_PACKAGES)}

_FINGERPRINT = re.compile(r"fingerprint|sha256|digest|hash", re.IGNORECASE)
_DETERMINISM = re.compile(
    r"determinis|benchmark|cublas|matmul_precision|float32_matmul|allow_tf32|tf32", re.IGNORECASE
)
_SEED = re.compile(r"seed|rng|random_state|generator_state|(^|[._])random($|[._])", re.IGNORECASE)
_THREADS = re.compile(r"thread|omp_|mkl_|openblas|interop|num_workers", re.IGNORECASE)
_ACCEL_LIBS = re.compile(r"cuda|cudnn|nccl|rocm|hip_version|driver", re.IGNORECASE)
_ACCELERATOR = re.compile(r"gpu|device|accelerator|tpu|mps", re.IGNORECASE)
_HARDWARE = re.compile(
    r"cpu|processor|machine|arch|(^|[._])ram($|[._])|memory|platform|(^|[._])os($|[._])|system"
    r"|kernel|release",
    re.IGNORECASE,
)
_HOST = re.compile(r"host|node", re.IGNORECASE)
_PYTHON = re.compile(r"python", re.IGNORECASE)


def normalise_package(name: str) -> str:
    """Return a distribution name in PEP 503 normal form (lowercase, runs of -_. as one dash)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def package_weight(name: str) -> float:
    """Return the weight of a changed package: ML packages by closeness to the numerics first."""
    rank = _ML_RANK.get(normalise_package(name))
    if rank is None:
        return W_PACKAGE
    # Spread ML packages between W_ML_PACKAGE and W_ML_PACKAGE_MINOR in list order.
    return W_ML_PACKAGE - (W_ML_PACKAGE - W_ML_PACKAGE_MINOR) * rank / len(ML_PACKAGES)


def classify_keyword(path: tuple[str, ...]) -> tuple[Category, float] | None:
    """Classify a path by the words in it, regardless of which section holds it.

    Keyword rules come first because facts land in different sections depending on who recorded
    them: ``seed_everything(deterministic=True)`` may note the flag beside the seed, an integration
    may record the thread count in its own section, the environment holds ``PYTHONHASHSEED``.

    Args:
        path: the path of the differing value (section first).

    Returns:
        (category, weight), or None when no keyword matches.
    """
    text = ".".join(path)
    leaf = path[-1] if path else ""
    if _FINGERPRINT.search(leaf) and path[:1] == ("data",):
        return Category.DATA, W_DATA_FINGERPRINT
    if _DETERMINISM.search(text):
        return Category.DETERMINISM, W_DETERMINISM
    if _SEED.search(text):
        return Category.SEEDS, W_SEED
    if _THREADS.search(text):
        return Category.HARDWARE, W_THREADS
    return None


def classify_environment(path: tuple[str, ...]) -> tuple[Category, float]:
    """Classify a differing environment fact (packages are handled separately)."""
    text = ".".join(path[1:])
    if _ACCEL_LIBS.search(text):
        return Category.PACKAGES, W_ACCEL_LIBS
    if _ACCELERATOR.search(text):
        return Category.HARDWARE, W_ACCELERATOR
    if _PYTHON.search(text):
        return Category.PACKAGES, W_PYTHON
    if _HOST.search(text):
        return Category.HARDWARE, W_HOST
    if _HARDWARE.search(text):
        return Category.HARDWARE, W_HARDWARE
    return Category.OTHER, W_OTHER
