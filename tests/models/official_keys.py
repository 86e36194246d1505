"""Expected state_dict keys and shapes of every zoo architecture, written down from the
official DGNet code (CAS-CLab/DGNet: models/mask.py, models/cifar/resdg.py,
models/imagenet/resdg.py, models/mobilenet_v2/mobilenet_v2_dg{,_util}.py) with the
training script's `--bias 2`, so both gates carry a bias.

Independent of dgfpga_models on purpose: a generator over the official stage tables.
`official_keys(arch)` returns an ordered dict key -> shape tuple (0-d for
`num_batches_tracked`), in the official registration order.
"""
from __future__ import annotations

Shapes = dict  # key -> tuple[int, ...]


def _bn(d: Shapes, prefix: str, c: int) -> None:
    for name in ("weight", "bias", "running_mean", "running_var"):
        d[f"{prefix}.{name}"] = (c,)
    d[f"{prefix}.num_batches_tracked"] = ()


def _mask_s(d: Shapes, prefix: str, cin: int) -> None:
    d[f"{prefix}.atten_s.weight"] = (1, cin, 3, 3)
    d[f"{prefix}.atten_s.bias"] = (1,)


def _mask_c(d: Shapes, prefix: str, cin: int, cout: int) -> None:
    hidden = cin // 4
    d[f"{prefix}.atten_c.0.weight"] = (hidden, cin, 1, 1)
    _bn(d, f"{prefix}.atten_c.1", hidden)
    d[f"{prefix}.atten_c.3.weight"] = (cout, hidden, 1, 1)
    d[f"{prefix}.atten_c.3.bias"] = (cout,)


def _basic(d: Shapes, p: str, cin: int, planes: int, downsample: bool) -> None:
    # BasicBlock.__init__ order: mask_s, mask_c, conv1, bn1, conv2, bn2, downsample
    _mask_s(d, f"{p}.mask_s", cin)
    _mask_c(d, f"{p}.mask_c", cin, planes)
    d[f"{p}.conv1.weight"] = (planes, cin, 3, 3)
    _bn(d, f"{p}.bn1", planes)
    d[f"{p}.conv2.weight"] = (planes, planes, 3, 3)
    _bn(d, f"{p}.bn2", planes)
    if downsample:
        d[f"{p}.downsample.0.weight"] = (planes, cin, 1, 1)
        _bn(d, f"{p}.downsample.1", planes)


def _bottleneck(d: Shapes, p: str, cin: int, planes: int, downsample: bool) -> None:
    # Bottleneck.__init__ order: mask_s, conv1, bn1, mask_c1, conv2, bn2, mask_c2,
    # conv3, bn3, downsample
    out = planes * 4
    _mask_s(d, f"{p}.mask_s", cin)
    d[f"{p}.conv1.weight"] = (planes, cin, 1, 1)
    _bn(d, f"{p}.bn1", planes)
    _mask_c(d, f"{p}.mask_c1", cin, planes)
    d[f"{p}.conv2.weight"] = (planes, planes, 3, 3)
    _bn(d, f"{p}.bn2", planes)
    _mask_c(d, f"{p}.mask_c2", planes, planes)
    d[f"{p}.conv3.weight"] = (out, planes, 1, 1)
    _bn(d, f"{p}.bn3", out)
    if downsample:
        d[f"{p}.downsample.0.weight"] = (out, cin, 1, 1)
        _bn(d, f"{p}.downsample.1", out)


def _cifar(depth: int, num_classes: int) -> Shapes:
    d: Shapes = {}
    d["conv1.weight"] = (16, 3, 3, 3)
    _bn(d, "bn1", 16)
    n, cin = (depth - 2) // 6, 16
    for i, (planes, stride) in enumerate(((16, 1), (32, 2), (64, 2)), start=1):
        for j in range(n):
            s = stride if j == 0 else 1
            _basic(d, f"layer{i}.{j}", cin, planes, s != 1 or cin != planes)
            cin = planes
    d["fc.weight"] = (num_classes, 64)
    d["fc.bias"] = (num_classes,)
    return d


def _imagenet(layers: tuple[int, ...], bottleneck: bool, num_classes: int) -> Shapes:
    d: Shapes = {}
    d["conv1.weight"] = (64, 3, 7, 7)
    _bn(d, "bn1", 64)
    expansion = 4 if bottleneck else 1
    cin = 64
    for i, (planes, stride, count) in enumerate(zip((64, 128, 256, 512), (1, 2, 2, 2), layers), 1):
        for j in range(count):
            s = stride if j == 0 else 1
            ds = s != 1 or cin != planes * expansion
            (_bottleneck if bottleneck else _basic)(d, f"layer{i}.{j}", cin, planes, ds)
            cin = planes * expansion
    d["fc.weight"] = (num_classes, 512 * expansion)
    d["fc.bias"] = (num_classes,)
    return d


def _conv_bn(d: Shapes, p: str, cin: int, cout: int, k: int, groups: int = 1) -> None:
    d[f"{p}.0.weight"] = (cout, cin // groups, k, k)
    _bn(d, f"{p}.1", cout)


def _mobilenet_v2(num_classes: int) -> Shapes:
    setting = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
               (6, 160, 3, 2), (6, 320, 1, 1)]
    d: Shapes = {}
    _conv_bn(d, "features.0", 3, 32, 3)
    cin, idx = 32, 1
    for t, c, n, s in setting:
        for i in range(n):
            stride = s if i == 0 else 1
            hidden = cin * t
            p = f"features.{idx}"
            j = 0
            if t != 1:
                _conv_bn(d, f"{p}.conv.0", cin, hidden, 1)
                j = 1
            _conv_bn(d, f"{p}.conv.{j}", hidden, hidden, 3, groups=hidden)
            d[f"{p}.conv.{j + 1}.weight"] = (c, hidden, 1, 1)
            _bn(d, f"{p}.conv.{j + 2}", c)
            if stride == 1 and cin == c:
                # InvertedResidual.__init__ order: conv, mask_c, mask_s
                _mask_c(d, f"{p}.mask_c", cin, hidden)
                _mask_s(d, f"{p}.mask_s", cin)
            cin, idx = c, idx + 1
    _conv_bn(d, f"features.{idx}", cin, 1280, 1)
    d["classifier.1.weight"] = (num_classes, 1280)
    d["classifier.1.bias"] = (num_classes,)
    return d


def official_keys(arch: str, num_classes: int | None = None) -> Shapes:
    """Ordered key -> shape of the official model `arch` (CIFAR default 10 classes,
    ImageNet 1000)."""
    if arch.endswith("_cifar10"):
        return _cifar(int(arch[len("resdg"):-len("_cifar10")]), num_classes or 10)
    layers = {"resdg18": ((2, 2, 2, 2), False), "resdg34": ((3, 4, 6, 3), False),
              "resdg50": ((3, 4, 6, 3), True)}
    if arch in layers:
        return _imagenet(*layers[arch], num_classes or 1000)
    if arch == "mobilenet_v2_dg":
        return _mobilenet_v2(num_classes or 1000)
    raise KeyError(arch)


OFFICIAL_ARCHS = ("resdg20_cifar10", "resdg32_cifar10", "resdg56_cifar10", "resdg110_cifar10",
                  "resdg18", "resdg34", "resdg50", "mobilenet_v2_dg")
