"""GAN-INT-CLS (Reed et al. 2016) in plain PyTorch eager: the twin t2i's
GAN-INT-CLS is timed against (bench/compare.sh).

Written from the spec (../shared/spec, Algorithm 1 of the paper): the DCGAN
generator conditioned on a projected sentence vector, the matching-aware
discriminator, the GAN-INT-CLS losses (real/right, real/wrong, fake/right,
and the interpolated sentences' fakes) and Adam; with `diversity_weight`
(the `tiny` preset) the mode-seeking term too. The official code is Lua
Torch, so there are no official fixtures: `check` loads the fixture `t2i
bench --model gan-int-cls --twin-fixture DIR` writes (t2i's random initial
weights, one step's batch and noises, and t2i's losses and weights after
that step) and reproduces the step within 1e-4 (but for the few weights
whose gradient is within rounding of zero, where Adam's first step may go
either way). `bench` times a training
iteration on a fixed in-memory batch, and generation, with the fixture's
config.
"""

import json
import sys
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import load_file

from common import cli, max_diff, report


def lrelu(x):
    return F.leaky_relu(x, 0.2)


def stages(c):
    """Stride-2 steps between 4x4 and the image."""
    return (c["image_size"] // 4).bit_length() - 1


class Generator(nn.Module):
    """z and the projected sentence -> 4x4 by a transposed convolution, then
    x2 transposed convolutions with batch norm and ReLU, tanh at the end."""

    def __init__(self, c):
        super().__init__()
        n = stages(c)
        ch = c["ngf"] << (n - 1)
        self.text_proj = nn.Linear(c["text_dim"], c["proj_dim"])
        self.deconv0 = nn.ConvTranspose2d(c["z_dim"] + c["proj_dim"], ch, 4, 1, 0, bias=False)
        self.bn0 = nn.BatchNorm2d(ch)
        for i in range(1, n):
            setattr(self, f"deconv{i}", nn.ConvTranspose2d(ch, ch // 2, 4, 2, 1, bias=False))
            setattr(self, f"bn{i}", nn.BatchNorm2d(ch // 2))
            ch //= 2
        setattr(self, f"deconv{n}", nn.ConvTranspose2d(ch, 3, 4, 2, 1, bias=False))
        self.n = n

    def forward(self, z, h):
        t = lrelu(self.text_proj(h))
        x = torch.cat([z, t], 1)[:, :, None, None]
        x = F.relu(self.bn0(self.deconv0(x)))
        for i in range(1, self.n):
            x = F.relu(getattr(self, f"bn{i}")(getattr(self, f"deconv{i}")(x)))
        return torch.tanh(getattr(self, f"deconv{self.n}")(x))


class Discriminator(nn.Module):
    """Image -> 4x4 features (strided convolutions, batch norm, LeakyReLU);
    the projected sentence tiled over them; a 1x1 and a 4x4 convolution to
    one logit per pair."""

    def __init__(self, c):
        super().__init__()
        n = stages(c)
        ch = c["ndf"]
        self.conv0 = nn.Conv2d(3, ch, 4, 2, 1, bias=False)
        for i in range(1, n):
            setattr(self, f"conv{i}", nn.Conv2d(ch, ch * 2, 4, 2, 1, bias=False))
            setattr(self, f"bn{i}", nn.BatchNorm2d(ch * 2))
            ch *= 2
        self.text_proj = nn.Linear(c["text_dim"], c["proj_dim"])
        self.joint = nn.Conv2d(ch + c["proj_dim"], ch, 1, 1, 0, bias=False)
        self.joint_bn = nn.BatchNorm2d(ch)
        self.out = nn.Conv2d(ch, 1, 4, 1, 0, bias=False)
        self.n = n

    def features(self, x):
        x = lrelu(self.conv0(x))
        for i in range(1, self.n):
            x = lrelu(getattr(self, f"bn{i}")(getattr(self, f"conv{i}")(x)))
        return x

    def head(self, f, h):
        t = lrelu(self.text_proj(h))[:, :, None, None].expand(-1, -1, 4, 4)
        j = lrelu(self.joint_bn(self.joint(torch.cat([f, t], 1))))
        return self.out(j).view(-1)

    def forward(self, x, h):
        return self.head(self.features(x), h)


def bce(s, real):
    return F.binary_cross_entropy_with_logits(s, torch.ones_like(s) if real else torch.zeros_like(s))


def interpolate(h, beta):
    """beta h + (1 - beta) h', h' the batch rolled by one (eq. 5)."""
    return h * beta + torch.roll(h, 1, 0) * (1 - beta)


def mode_seeking(x1, x2, z1, z2):
    return 1 / ((x1 - x2).abs().mean() / (z1 - z2).abs().mean() + 1e-5)


class Step:
    """Algorithm 1's step: D on real/right, real/wrong and the fakes, then G."""

    def __init__(self, c, g, d):
        self.c, self.g, self.d = c, g, d
        betas = (c["beta1"], c["beta2"])
        self.opt_g = torch.optim.Adam(g.parameters(), lr=c["lr"], betas=betas)
        self.opt_d = torch.optim.Adam(d.parameters(), lr=c["lr"], betas=betas)

    def __call__(self, x, h, hw, z, z_int, z_div=None):
        c, g, d = self.c, self.g, self.d
        g.train()
        d.train()
        fake = g(z, h)
        hi = interpolate(h, c["int_beta"])
        fake_int = g(z_int, hi)
        f_real = d.features(x)
        s_r, s_w = d.head(f_real, h), d.head(f_real, hw)
        s_f, s_i = d(fake.detach(), h), d(fake_int.detach(), hi)
        loss_d = bce(s_r, True) + (bce(s_w, False) + (bce(s_f, False) + bce(s_i, False)) * 0.5) * 0.5
        self.opt_d.zero_grad()
        loss_d.backward()
        self.opt_d.step()
        s_f2 = d.head(d.features(fake), h)
        s_i2 = d(fake_int, hi)
        loss_g = bce(s_f2, True) + bce(s_i2, True)
        if c["diversity_weight"] > 0 and z_div is not None:
            k = z_div.shape[0]
            fake_b = g(z_div, h[:k])
            loss_g = loss_g + mode_seeking(fake[:k], fake_b, z[:k], z_div) * c["diversity_weight"]
        self.opt_g.zero_grad()
        loss_g.backward()
        self.opt_g.step()
        return loss_d.detach(), loss_g.detach()


def fixture_config(fixture):
    with safe_open(str(Path(fixture) / "weights.safetensors"), "pt") as f:
        c = json.loads(f.metadata()["config"])
    if c["variant"] != "gan-int-cls":
        sys.exit(f"the twin has GAN-INT-CLS only, the fixture's variant is {c['variant']}")
    return c


def split(tensors, prefix):
    return {k[len(prefix) + 1:]: v for k, v in tensors.items() if k.startswith(prefix + ".")}


def build(c, weights):
    g, d = Generator(c), Discriminator(c)
    for net, prefix in [(g, "g"), (d, "d")]:
        missing, unexpected = net.load_state_dict(split(weights, prefix), strict=False)
        missing = [k for k in missing if not k.endswith("num_batches_tracked")]
        if missing or unexpected:
            sys.exit(f"{prefix}: keys not in the fixture {missing}, extra keys {unexpected}")
    return g, d


def check(fixture):
    """t2i's step on the fixture's weights and inputs, within 1e-4."""
    root = Path(fixture)
    c = fixture_config(fixture)
    g, d = build(c, load_file(str(root / "weights.safetensors")))
    x = load_file(str(root / "inputs.safetensors"))
    want = load_file(str(root / "outputs.safetensors"))
    loss_d, loss_g = Step(c, g, d)(x["images"], x["right"], x["wrong"], x["z"], x["z_int"], x.get("z_div"))
    worst = {"loss_d": max_diff(loss_d, want["loss_d"]), "loss_g": max_diff(loss_g, want["loss_g"])}
    ok = all(v <= 1e-4 for v in worst.values())
    # Adam's first step moves every weight by about lr times the sign of its
    # gradient, so a gradient within rounding of zero may step either way
    # in either engine: such weights (a few in a million) may differ by up to
    # 2 lr; every other weight must agree within 1e-4
    beyond, total = 0, 0
    for net, prefix in [(g, "g"), (d, "d")]:
        state = net.state_dict()
        diffs = [(state[k].float() - v.float()).abs() for k, v in split(want, prefix).items()]
        worst[f"{prefix} after the step"] = max(x.max().item() for x in diffs)
        beyond += sum(int((x > 1e-4).sum()) for x in diffs)
        total += sum(x.numel() for x in diffs)
        ok = ok and worst[f"{prefix} after the step"] <= 2 * c["lr"] + 1e-6
    ok = ok and beyond <= total * 1e-5
    print(json.dumps({"max_abs_diff": worst, "tolerance": 1e-4,
                      "weights_beyond_tolerance": f"{beyond} of {total} (Adam's sign at a zero gradient)",
                      "ok": ok}, indent=1))
    return ok


def bench(fixture, batch_size, repeats, threads):
    """Median ms of a training iteration and of generation at batch 1/16/32."""
    batch = batch_size
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    c = fixture_config(fixture)
    g, d = Generator(c), Discriminator(c)
    step = Step(c, g, d)
    s = c["image_size"]
    x = torch.rand(batch, 3, s, s) * 2 - 1
    h, hw = torch.randn(batch, c["text_dim"]), torch.randn(batch, c["text_dim"])

    def train():
        z, z_int = torch.randn(batch, c["z_dim"]), torch.randn(batch, c["z_dim"])
        step(x, h, hw, z, z_int, torch.randn(max(batch // 2, 1), c["z_dim"]))

    def gen(k):
        t, z = torch.randn(k, c["text_dim"]), torch.randn(k, c["z_dim"])

        def f():
            g.eval()
            with torch.no_grad():
                g(z, t)
        return f

    return report(f"gan-int-cls {c['preset']}", batch, train, gen, repeats, warm=3)


def main():
    cli(__doc__, check, bench, [("--fixture", dict(required=True))],
        [("--fixture", dict(required=True, help="a twin fixture: its config is benched")),
         ("--batch-size", dict(type=int, required=True))],
        "reproduce t2i's step on its fixture within 1e-4")

if __name__ == "__main__":
    main()
