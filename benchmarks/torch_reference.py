"""The PyTorch reference that tfunmask's training speed is measured against (``bench`` extra).

The networks of the official Pix2Pix and CycleGAN code, written from their papers' descriptions:

* Pix2Pix: a U-Net of 4x4 stride-2 convolutions (widths ``filters * 2**i`` up to 8x, batch norm,
  LeakyReLU 0.2) down to 1x1, ``ConvTranspose2d`` 4x4 stride 2 up (batch norm, ReLU, dropout 0.5
  in the three innermost steps), tanh; a 70x70 PatchGAN on (input, image) pairs.
* CycleGAN: ResNet generators (c7s1-64, d128, d256, ``blocks`` residual blocks with reflection
  padding and instance norm, u128, u64 as ``ConvTranspose2d``, c7s1-3 + tanh) and instance-norm
  PatchGANs, least-squares GAN terms, cycle and identity L1.

One training step is what tfunmask's ``GAN.train_step`` does: one forward pass, the generator and
discriminator objectives from it, and an Adam step of each player (the discriminator sees the
fakes of the same pass). ``images_per_second`` times it like ``train_throughput.py`` times Keras:
warm-up steps, then timed steps on one in-memory batch.
"""

import os
import time

import torch
from torch import nn
from torch.nn import functional as F


def _unet_down(cin, cout, norm=True):
    layers = [nn.Conv2d(cin, cout, 4, 2, 1, bias=not norm)]
    if norm:
        layers.append(nn.BatchNorm2d(cout))
    return nn.Sequential(*layers, nn.LeakyReLU(0.2))


def _unet_up(cin, cout, dropout):
    layers = [nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=False), nn.BatchNorm2d(cout)]
    if dropout:
        layers.append(nn.Dropout(0.5))
    return nn.Sequential(*layers, nn.ReLU())


class UNet(nn.Module):
    def __init__(self, image_size, filters=64, max_filters=512):
        super().__init__()
        depth = image_size.bit_length() - 1
        widths = [min(filters * 2 ** i, max_filters) for i in range(depth)]
        self.down = nn.ModuleList(_unet_down(3 if i == 0 else widths[i - 1], w, norm=0 < i < depth - 1)
                                  for i, w in enumerate(widths))
        self.up = nn.ModuleList(
            _unet_up(widths[i + 1] * (1 if i == depth - 2 else 2), widths[i], dropout=i >= depth - 4)
            for i in reversed(range(depth - 1)))
        self.out = nn.ConvTranspose2d(widths[0] * 2, 3, 4, 2, 1)

    def forward(self, x):
        skips = []
        for layer in self.down:
            x = layer(x)
            skips.append(x)
        for layer, skip in zip(self.up, reversed(skips[:-1])):
            x = torch.cat([layer(x), skip], 1)
        return torch.tanh(self.out(x))


def patch_discriminator(channels, filters=64, norm=nn.BatchNorm2d):
    """70x70 PatchGAN: C64-C128-C256-C512 (the last stride 1), then a 1-channel 4x4 conv."""
    layers, cin = [], channels
    for i, mult in enumerate((1, 2, 4, 8)):
        stride = 1 if i == 3 else 2
        layers.append(nn.Conv2d(cin, filters * mult, 4, stride, 1, bias=i == 0))
        if i:
            layers.append(norm(filters * mult))
        layers.append(nn.LeakyReLU(0.2))
        cin = filters * mult
    return nn.Sequential(*layers, nn.Conv2d(cin, 1, 4, 1, 1))


class ResidualBlock(nn.Module):
    def __init__(self, width):
        super().__init__()
        self.body = nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(width, width, 3), nn.InstanceNorm2d(width),
                                  nn.ReLU(), nn.ReflectionPad2d(1), nn.Conv2d(width, width, 3),
                                  nn.InstanceNorm2d(width))

    def forward(self, x):
        return x + self.body(x)


def resnet_generator(filters=64, blocks=9):
    f = filters
    return nn.Sequential(
        nn.ReflectionPad2d(3), nn.Conv2d(3, f, 7), nn.InstanceNorm2d(f), nn.ReLU(),
        nn.Conv2d(f, 2 * f, 3, 2, 1), nn.InstanceNorm2d(2 * f), nn.ReLU(),
        nn.Conv2d(2 * f, 4 * f, 3, 2, 1), nn.InstanceNorm2d(4 * f), nn.ReLU(),
        *[ResidualBlock(4 * f) for _ in range(blocks)],
        nn.ConvTranspose2d(4 * f, 2 * f, 3, 2, 1, output_padding=1), nn.InstanceNorm2d(2 * f), nn.ReLU(),
        nn.ConvTranspose2d(2 * f, f, 3, 2, 1, output_padding=1), nn.InstanceNorm2d(f), nn.ReLU(),
        nn.ReflectionPad2d(3), nn.Conv2d(f, 3, 7), nn.Tanh())


def _adam(params):
    return torch.optim.Adam(params, lr=2e-4, betas=(0.5, 0.999))


class Pix2PixStep:
    """One Pix2Pix step (BCE GAN terms, lambda 100 L1) of both players from one forward pass."""

    def __init__(self, image_size, filters=64):
        self.generator, self.discriminator = UNet(image_size, filters), patch_discriminator(6, filters)
        self.g_opt, self.d_opt = _adam(self.generator.parameters()), _adam(self.discriminator.parameters())

    def batch(self, size, batch):
        return [torch.rand(batch, 3, size, size) * 2 - 1 for _ in range(2)]

    def __call__(self, masked, target):
        fake = self.generator(masked)
        real_logits = self.discriminator(torch.cat([masked, target], 1))
        fake_logits = self.discriminator(torch.cat([masked, fake], 1))
        bce = F.binary_cross_entropy_with_logits
        g_loss = bce(fake_logits, torch.ones_like(fake_logits)) + 100.0 * (fake - target).abs().mean()
        d_loss = 0.5 * (bce(real_logits, torch.ones_like(real_logits))
                        + bce(fake_logits, torch.zeros_like(fake_logits)))
        _update(self.g_opt, g_loss, self.generator, retain=True)
        _update(self.d_opt, d_loss, self.discriminator)


class CycleGANStep:
    """One CycleGAN step (LSGAN, cycle 10, identity 0.5 x 10) of both players, both directions."""

    def __init__(self, image_size, filters=64, blocks=9):
        self.g_ab, self.g_ba = resnet_generator(filters, blocks), resnet_generator(filters, blocks)
        self.d_a = patch_discriminator(3, filters, nn.InstanceNorm2d)
        self.d_b = patch_discriminator(3, filters, nn.InstanceNorm2d)
        self.generators = nn.ModuleList([self.g_ab, self.g_ba])
        self.discriminators = nn.ModuleList([self.d_a, self.d_b])
        self.g_opt, self.d_opt = _adam(self.generators.parameters()), _adam(self.discriminators.parameters())

    def batch(self, size, batch):
        return [torch.rand(batch, 3, size, size) * 2 - 1 for _ in range(2)]

    def __call__(self, a, b):
        g_loss = d_loss = 0.0
        for x, y, g, f, d in ((a, b, self.g_ab, self.g_ba, self.d_b), (b, a, self.g_ba, self.g_ab, self.d_a)):
            fake = g(x)
            fake_scores = d(fake)
            g_loss = g_loss + ((fake_scores - 1) ** 2).mean() + 10.0 * (f(fake) - x).abs().mean() \
                + 5.0 * (g(y) - y).abs().mean()
            d_loss = d_loss + 0.5 * (((d(y) - 1) ** 2).mean() + (fake_scores ** 2).mean())
        _update(self.g_opt, g_loss, self.generators, retain=True)
        _update(self.d_opt, d_loss, self.discriminators)


def _update(optimizer, loss, module, retain=False):
    """An Adam step of ``module`` from ``loss`` alone (the other player's gradients untouched)."""
    params = [p for p in module.parameters() if p.requires_grad]
    for param, grad in zip(params, torch.autograd.grad(loss, params, retain_graph=retain)):
        param.grad = grad
    optimizer.step()


def make_step(model, image_size, filters=64, blocks=9):
    if model == "pix2pix":
        return Pix2PixStep(image_size, filters)
    return CycleGANStep(image_size, filters, blocks)


def images_per_second(step, image_size, batch_size, steps, warmup, precision="float32"):
    """Batch size over the median of ``steps`` timed steps, after ``warmup`` untimed ones.

    ``precision`` "bfloat16" runs each step under CPU autocast to bfloat16 (PyTorch's mixed
    precision: convolutions and matrix products in bfloat16, weights and reductions in float32),
    the counterpart of Keras' ``mixed_bfloat16`` policy."""
    torch.set_num_threads(os.cpu_count())
    data = step.batch(image_size, batch_size)
    autocast = lambda: torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bfloat16")  # noqa: E731
    for _ in range(warmup):
        with autocast():
            step(*data)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        with autocast():
            step(*data)
        times.append(time.perf_counter() - start)
    return batch_size / sorted(times)[len(times) // 2]


def multiply_adds(model, image_size):
    """Multiply-adds of one forward pass of the generator, counted from its convolutions."""
    step = make_step(model, image_size)
    generator = step.generator if model == "pix2pix" else step.g_ab
    total = 0

    def count(layer, inputs, output):
        nonlocal total
        weight = layer.weight
        if isinstance(layer, nn.ConvTranspose2d):
            total += inputs[0].shape[-1] * inputs[0].shape[-2] * weight.numel()
        else:
            total += output.shape[-1] * output.shape[-2] * weight.numel()

    hooks = [m.register_forward_hook(count) for m in generator.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    with torch.no_grad():
        generator(torch.zeros(1, 3, image_size, image_size))
    for hook in hooks:
        hook.remove()
    return total
