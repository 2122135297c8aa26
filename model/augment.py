"""Batched uint8 augmentations: crop + flip, cutout, and TrivialAugmentWide / RandAugment.

Every op draws its parameters per image and runs on the whole batch at once. The two
policies keep torchvision's op list and magnitude bins (``torchvision.transforms.v2``,
``_AUGMENTATION_SPACE``) and match its functional ops pixel for pixel (tests/test_augment.py).

Why not torchvision or kornia: a v2 policy draws one op per call, so per-image ops would
need one Python call per image, and several v2 ops build small tensors from Python data
(affine matrix, sharpness kernel), each a blocking host-to-device copy on CUDA. kornia 0.9's
``TrivialAugment`` / ``RandAugment`` draw one op (two for RandAugment) per batch, not per
image, use their own op list and ranges (no Identity, shear up to 0.3 * 180 degrees), read
1-3 scalars back to the host per batch, and were slower in one run at batch 256 on 2 CPU
threads: 29k and 19-22k images/s against 79-92k and 38-45k for these.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

OPS: tuple[str, ...] = (
    "Identity", "ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate", "Brightness",
    "Color", "Contrast", "Sharpness", "Posterize", "Solarize", "AutoContrast", "Equalize",
)
_GEOMETRIC = ("ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate")
_COLOUR = ("Brightness", "Color", "Contrast", "Sharpness", "Posterize", "Solarize",
           "AutoContrast", "Equalize")
# What a policy runs, in OPS order, with the last op index of each: the geometric ops are
# adjacent in OPS and run as one ("").
_STEPS = (("", OPS.index(_GEOMETRIC[-1])), *((name, OPS.index(name)) for name in _COLOUR))


# ---------------------------------------------------------------------------------------
# Crop, flip and cutout


def _reflect(index: torch.Tensor, size: int) -> torch.Tensor:
    """Mirror out-of-range indices back into [0, size), without repeating the edge."""
    index = index.abs()
    return torch.where(index > size - 1, 2 * (size - 1) - index, index)


def batch_crop_flip(images: torch.Tensor, padding: int = 4, flip: bool = True) -> torch.Tensor:
    """Random crop (reflect padding) and horizontal flip, drawn per image, as one gather."""
    b, c, h, w = images.shape
    device = images.device
    rows = torch.arange(h, device=device).expand(b, h)
    cols = torch.arange(w, device=device).expand(b, w)
    if flip:
        mirror = torch.rand(b, 1, device=device) < 0.5
        cols = torch.where(mirror, w - 1 - cols, cols)
    if padding:
        # Reflect padding is folded into the index arithmetic, so nothing is padded and
        # every image gets its own offset in a single gather instead of a loop over offsets.
        shifts = torch.randint(-padding, padding + 1, (b, 2), device=device)
        rows = _reflect(rows + shifts[:, :1], h)
        cols = _reflect(cols + shifts[:, 1:], w)
    index = (rows[:, :, None] * w + cols[:, None, :]).reshape(b, 1, h * w).expand(b, c, h * w)
    return images.reshape(b, c, h * w).gather(2, index).view(b, c, h, w)


def batch_cutout_(images: torch.Tensor, size: int) -> torch.Tensor:
    """Zero, in place, one size x size square per image at a random centre, clipped at borders."""
    b, _, h, w = images.shape
    device = images.device
    top = torch.randint(0, h, (b, 1), device=device) - size // 2
    left = torch.randint(0, w, (b, 1), device=device) - size // 2
    r = torch.arange(h, device=device)
    c = torch.arange(w, device=device)
    in_rows = (r >= top) & (r < top + size)
    in_cols = (c >= left) & (c < left + size)
    # In place: an out-of-place fill allocates a fresh batch and costs a few ms on CPU.
    return images.masked_fill_(in_rows[:, None, :, None] & in_cols[:, None, None, :], 0)


# ---------------------------------------------------------------------------------------
# Magnitudes: torchvision's bins, turned into per-(op, bin, sign) parameter tables


def _signed_bins(num_bins: int, h: int, w: int, wide: bool) -> dict[str, torch.Tensor]:
    """Magnitude bins of the signed ops: TrivialAugmentWide's if `wide`, else RandAugment's.

    float32 from torch.linspace, as torchvision builds them, so the values are the same.
    """
    shear, colour = (0.99, 0.99) if wide else (0.3, 0.9)
    return {
        "ShearX": torch.linspace(0.0, shear, num_bins),
        "ShearY": torch.linspace(0.0, shear, num_bins),
        "TranslateX": torch.linspace(0.0, 32.0 if wide else 150.0 / 331.0 * w, num_bins),
        "TranslateY": torch.linspace(0.0, 32.0 if wide else 150.0 / 331.0 * h, num_bins),
        "Rotate": torch.linspace(0.0, 135.0 if wide else 30.0, num_bins),
        **{name: torch.linspace(0.0, colour, num_bins)
           for name in ("Brightness", "Color", "Contrast", "Sharpness")},
    }


def _inverse_affine(center, angle, translate, shear) -> list[float]:
    """torchvision's inverse affine matrix (scale 1), in pixels about the image centre."""
    rot, sx, sy = math.radians(angle), math.radians(shear[0]), math.radians(shear[1])
    (cx, cy), (tx, ty) = center, translate
    a = math.cos(rot - sy) / math.cos(sy)
    b = -(a * math.tan(sx) + math.sin(rot))
    c = math.sin(rot - sy) / math.cos(sy)
    d = math.cos(rot) - c * math.tan(sx)
    m = [d, -b, 0.0, -c, a, 0.0]
    m[2] += cx - m[0] * (cx + tx) - m[1] * (cy + ty)
    m[5] += cy - m[3] * (cx + tx) - m[4] * (cy + ty)
    return m


def _op_matrix(op: str, mag: float, h: int, w: int) -> list[float]:
    """Inverse matrix of one geometric op with torchvision's centre and parameters."""
    if op in ("ShearX", "ShearY"):
        # The shear is about the top-left corner, as in torchvision's policies.
        deg = math.degrees(math.atan(mag))
        shear = [deg, 0.0] if op == "ShearX" else [0.0, deg]
        return _inverse_affine([-w * 0.5, -h * 0.5], 0.0, [0.0, 0.0], shear)
    if op in ("TranslateX", "TranslateY"):
        shift = [float(int(mag)), 0.0] if op == "TranslateX" else [0.0, float(int(mag))]
        return _inverse_affine([0.0, 0.0], 0.0, shift, [0.0, 0.0])
    angle = mag % 360
    if angle in (0.0, 90.0, 180.0, 270.0) and (angle in (0.0, 180.0) or h == w):
        # torchvision takes a rot90 fast path here; an exact matrix samples the same pixels.
        cos, sin = round(math.cos(math.radians(angle))), round(math.sin(math.radians(angle)))
        return [cos, -sin, 0.0, sin, cos, 0.0]
    return _inverse_affine([0.0, 0.0], -angle, [0.0, 0.0], [0.0, 0.0])


def _tables(num_bins: int, h: int, w: int, wide: bool):
    """Parameter tables with one row per (op, bin, sign): row = (op * num_bins + bin) * 2 + sign."""
    signed = _signed_bins(num_bins, h, w, wide)
    posterize = (8 - (torch.arange(num_bins) / ((num_bins - 1) / (6 if wide else 4)))).round().int()
    solarize = torch.linspace(1.0, 0.0, num_bins)
    theta, ratio, level = [], [], []
    for op in OPS:
        for k in range(num_bins):
            for sign in (1.0, -1.0):
                mag = sign * float(signed[op][k]) if op in signed else 0.0
                m = _op_matrix(op, mag, h, w) if op in _GEOMETRIC else [1, 0, 0, 0, 1, 0]
                theta.append(m)
                ratio.append(1.0 + mag)
                if op == "Posterize":
                    bits = int(posterize[k])
                    level.append(((1 << bits) - 1) << (8 - bits))
                elif op == "Solarize":
                    # torchvision compares uint8 >= float32 threshold: the same as >= its ceil.
                    level.append(math.ceil(torch.tensor(255.0 * float(solarize[k])).item()))
                else:
                    level.append(0)
    # torchvision's grid arithmetic, in float32: (pixel grid) @ theta^T / (w / 2, h / 2).
    theta = torch.tensor(theta, dtype=torch.float32).view(-1, 2, 3).transpose(1, 2)
    theta = theta.div(torch.tensor([0.5 * w, 0.5 * h]))
    ratio64 = torch.tensor(ratio, dtype=torch.float64)
    return (theta, ratio64.float(),
            (1.0 - ratio64).float(), torch.tensor(level, dtype=torch.uint8))


# ---------------------------------------------------------------------------------------
# The ops, on a batch of uint8 images with per-image parameters


def _grayscale(x: torch.Tensor) -> torch.Tensor:
    r, g, b = x.unbind(1)
    # torchvision's weights and op order, floored for uint8 input.
    return r.mul(0.2989).add_(g, alpha=0.587).add_(b, alpha=0.114).unsqueeze(1).floor_()


def _blend(x: torch.Tensor, other: torch.Tensor, ratio: torch.Tensor, rest: torch.Tensor):
    # addcmul_ rounds like torchvision's add_(other, alpha=1 - ratio) (one fused multiply-add).
    return x.mul(ratio).addcmul_(other, rest).clamp_(0, 255).to(torch.uint8)


def _sharpness(x: torch.Tensor, rest: torch.Tensor) -> torch.Tensor:
    # torchvision's blur is round((3x3 sum + 4 * centre) / 13) in float32. An integer over
    # 13 is never halfway between integers, so integer arithmetic rounds it the same.
    xi = x.to(torch.int16)
    rows = xi[..., :-2, :] + xi[..., 1:-1, :] + xi[..., 2:, :]
    total = rows[..., :-2] + rows[..., 1:-1] + rows[..., 2:] + 4 * xi[..., 1:-1, 1:-1]
    blurred = total.add_(6).div_(13, rounding_mode="floor").float()
    out = x.float()
    inner = out[..., 1:-1, 1:-1]
    # The border keeps its pixels, as in torchvision: x + (1 - factor) * (blurred - x).
    inner.addcmul_(blurred.sub_(inner), rest)
    return out.clamp_(0, 255).to(torch.uint8)


def _autocontrast(x: torch.Tensor) -> torch.Tensor:
    x = x.float()
    low, high = x.amin(dim=(2, 3), keepdim=True), x.amax(dim=(2, 3), keepdim=True)
    flat = high == low
    scale = (high - low).mul_(1.0 / 255)
    low = low.masked_fill_(flat, 0.0)
    scale = scale.masked_fill_(flat, 1.0)
    return x.sub_(low).div_(scale).clamp_(0, 255).to(torch.uint8)


def equalize(x: torch.Tensor) -> torch.Tensor:
    """Histogram equalization per image and channel, as torchvision (and PIL) do it."""
    n, c, h, w = x.shape
    flat = x.reshape(n, c, h * w).long()
    hist = torch.zeros(n, c, 256, dtype=torch.int32, device=x.device)
    hist.scatter_add_(2, flat, torch.ones_like(flat, dtype=torch.int32))
    # PIL's scheme: lut[k] = (cdf[k - 1] + step // 2) // step with step = (pixels not at
    # the channel's top value) // 255; a channel with step 0 is left as it is.
    top = x.reshape(n, c, h * w).amax(dim=2, keepdim=True).long()
    step = (h * w - hist.gather(2, top)).div_(255, rounding_mode="floor")
    cdf = hist.cumsum(2, dtype=torch.int32)[..., :-1]
    lut = cdf.add_(step // 2).div_(step.clamp(min=1), rounding_mode="floor").clamp_(0, 255)
    lut = F.pad(lut, (1, 0))
    # Channels with step 0 map through the identity instead of their LUT.
    lut = torch.where(step != 0, lut, torch.arange(256, device=x.device, dtype=lut.dtype))
    return lut.to(torch.uint8).gather(2, flat).view(n, c, h, w)


# ---------------------------------------------------------------------------------------
# Policies


class _BatchPolicy:
    """Per-image ops drawn from torchvision's space; call it on a uint8 [B, 3, H, W] batch.

    `subset` (default: on CPU) runs each op only on the images that drew it; that needs
    the op counts on the host, a sync on an accelerator, so there every op runs on the
    whole batch instead and torch.where keeps the images that drew it.
    """

    wide = True

    def __init__(self, size: tuple[int, int], device="cpu", num_magnitude_bins: int = 31,
                 subset: bool | None = None):
        self.size = tuple(size)
        self.device = torch.device(device)
        self.num_bins = num_magnitude_bins
        self.subset = self.device.type == "cpu" if subset is None else subset
        # Every constant is built here, once: a batch copies nothing from the host.
        tables = _tables(num_magnitude_bins, *self.size, self.wide)
        self._theta, self._ratio, self._rest, self._level = (t.to(self.device) for t in tables)
        h, w = self.size
        grid = torch.ones(h, w, 3)
        grid[..., 0] = torch.linspace((1.0 - w) * 0.5, (w - 1.0) * 0.5, w)
        grid[..., 1] = torch.linspace((1.0 - h) * 0.5, (h - 1.0) * 0.5, h).unsqueeze(-1)
        self._pixels = grid.view(h * w, 3).to(self.device)
        self._is_geometric = torch.tensor([op in _GEOMETRIC for op in OPS], device=self.device)

    def _draw(self, b: int) -> list[tuple[torch.Tensor, torch.Tensor | int]]:
        """(op, magnitude bin) per image, for each op applied in sequence."""
        raise NotImplementedError

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        x = self._check(images)
        for op, magnitude_bin in self._draw(len(x)):
            negate = torch.randint(2, (len(x),), device=self.device)
            x = self._round(x, op, (op * self.num_bins + magnitude_bin) * 2 + negate)
        return x

    def apply(self, images, op, magnitude_bin, negate) -> torch.Tensor:
        """One op per image with the given op index, magnitude bin and sign (0: +, 1: -)."""
        op = op.to(self.device)
        row = (op * self.num_bins + magnitude_bin.to(self.device)) * 2 + negate.to(self.device)
        return self._round(self._check(images), op, row)

    def _check(self, images: torch.Tensor) -> torch.Tensor:
        if images.dtype != torch.uint8 or tuple(images.shape[1:]) != (3, *self.size):
            raise ValueError(f"expected uint8 [B, 3, {self.size[0]}, {self.size[1]}] images, "
                             f"got {images.dtype} {list(images.shape)}")
        return images

    def _round(self, x: torch.Tensor, op: torch.Tensor, row: torch.Tensor) -> torch.Tensor:
        """A new batch with op[i] applied to image i."""
        if not self.subset:
            for name, k in _STEPS:
                drew = self._is_geometric[op] if name == "" else op == k
                x = torch.where(drew.view(-1, 1, 1, 1), self._run(name, x, row), x)
            return x
        # Sorted by op, each step's images are one slice: cheaper to gather and write back
        # than a mask per op.
        order = op.argsort(stable=True)
        x, row = x.index_select(0, order), row.index_select(0, order)
        ends = torch.bincount(op, minlength=len(OPS)).cumsum(0).tolist()
        start = ends[0]  # Identity
        for name, k in _STEPS:
            if ends[k] > start:
                x[start:ends[k]] = self._run(name, x[start:ends[k]], row[start:ends[k]])
            start = ends[k]
        return x.index_select(0, order.argsort())

    def _run(self, name: str, x: torch.Tensor, row: torch.Tensor) -> torch.Tensor:
        """The colour op `name`, or with "" the geometric ops, with the parameters of `row`."""
        if name == "":
            # One grid for all shears, translations and rotations, computed as torchvision
            # does ((pixel grid) @ theta^T, float32) so the nearest pixels are the same;
            # F.affine_grid rounds differently and moved ~0.7% of pixels at RandAugment shears.
            n, _, h, w = x.shape
            theta = self._theta[row].permute(1, 0, 2).reshape(3, 2 * n)
            grid = (self._pixels @ theta).view(h, w, n, 2).permute(2, 0, 1, 3)
            # Zeros outside, as torchvision's default fill.
            return F.grid_sample(x.float(), grid, mode="nearest", padding_mode="zeros",
                                 align_corners=False).to(torch.uint8)
        ratio, rest = self._ratio[row].view(-1, 1, 1, 1), self._rest[row].view(-1, 1, 1, 1)
        level = self._level[row].view(-1, 1, 1, 1)
        if name == "Brightness":
            return x.mul(ratio).clamp_(0, 255).to(torch.uint8)
        if name == "Color":
            return _blend(x, _grayscale(x), ratio, rest)
        if name == "Contrast":
            return _blend(x, _grayscale(x).mean(dim=(1, 2, 3), keepdim=True), ratio, rest)
        if name == "Sharpness":
            return _sharpness(x, rest)
        if name == "Posterize":
            return x & level
        if name == "Solarize":
            # 255 - x is x ^ 255 for uint8; much faster on CPU than torch.where.
            return x ^ (x >= level).to(torch.uint8).mul_(255)
        if name == "AutoContrast":
            return _autocontrast(x)
        return equalize(x)


class TrivialAugmentWide(_BatchPolicy):
    """torchvision's TrivialAugmentWide, with the op and magnitude bin drawn per image."""

    def _draw(self, b):
        op = torch.randint(len(OPS), (b,), device=self.device)
        return [(op, torch.randint(self.num_bins, (b,), device=self.device))]


class RandAugment(_BatchPolicy):
    """torchvision's RandAugment: `num_ops` ops in sequence, each drawn per image."""

    wide = False

    def __init__(self, size, device="cpu", num_ops: int = 2, magnitude: int = 9,
                 num_magnitude_bins: int = 31, subset: bool | None = None):
        super().__init__(size, device, num_magnitude_bins, subset)
        self.num_ops, self.magnitude = num_ops, magnitude

    def _draw(self, b):
        return [(torch.randint(len(OPS), (b,), device=self.device), self.magnitude)
                for _ in range(self.num_ops)]
