"""StackGAN Stage-I and Stage-II in plain PyTorch eager: the twin t2i's
StackGAN is timed against (bench/compare.sh).

Written from the spec (../shared/spec) and the reference fixtures' key lists
and shapes (../shared/reference/StackGAN-Pytorch/*/structure.json), so the
fixtures' weights load by name: `check` reproduces the official outputs and
losses within 1e-4, the tolerance t2i's own tests hold to on the same
fixtures. `bench` times one training iteration (D update, then G update
with the KL term, the official losses and Adam) on a fixed in-memory batch,
and generation.
"""

import json
from pathlib import Path

import torch
import torch.nn as nn
from safetensors.torch import load_file

from common import cli, kl_loss, max_diff, report


def conv3x3(cin, cout):
    return nn.Conv2d(cin, cout, 3, 1, 1, bias=False)


def up_block(cin, cout):
    """x2 nearest neighbour, 3x3 convolution, BatchNorm, ReLU."""
    return nn.Sequential(
        nn.Upsample(scale_factor=2, mode="nearest"),
        conv3x3(cin, cout),
        nn.BatchNorm2d(cout),
        nn.ReLU(True),
    )


def down_block(cin, cout, bn=True):
    """4x4 stride-2 convolution, BatchNorm, LeakyReLU 0.2."""
    layers = [nn.Conv2d(cin, cout, 4, 2, 1, bias=False)]
    if bn:
        layers.append(nn.BatchNorm2d(cout))
    layers.append(nn.LeakyReLU(0.2, True))
    return layers


class Config:
    def __init__(self, c):
        self.z = c["Z_DIM"]
        self.gf = c["GAN.GF_DIM"]
        self.df = c["GAN.DF_DIM"]
        self.cond = c["GAN.CONDITION_DIM"]
        self.r_num = c["GAN.R_NUM"]
        self.text = c["TEXT.DIMENSION"]
        # image sides of the two stages (the official code: 64 and 256)
        self.s1 = c.get("STAGE1_SIZE", 64)
        self.s2 = c.get("STAGE2_SIZE", 256)


def log2(x):
    return x.bit_length() - 1


PRESETS = {
    "paper": Config({"Z_DIM": 100, "GAN.GF_DIM": 128, "GAN.DF_DIM": 64,
                     "GAN.CONDITION_DIM": 128, "GAN.R_NUM": 4, "TEXT.DIMENSION": 1024}),
    # t2i's `tiny` (32 -> 64): the official networks with t2i's rules for
    # other sides (one up-block per doubling; D starts wider on smaller
    # images so it still reaches 8 df at 4x4)
    "tiny": Config({"Z_DIM": 100, "GAN.GF_DIM": 32, "GAN.DF_DIM": 32,
                    "GAN.CONDITION_DIM": 64, "GAN.R_NUM": 2, "TEXT.DIMENSION": 128,
                    "STAGE1_SIZE": 32, "STAGE2_SIZE": 64}),
}


class CANet(nn.Module):
    """Conditioning Augmentation (sec. 3.1): c = mu + exp(logvar / 2) * eps."""

    def __init__(self, c):
        super().__init__()
        self.c = c.cond
        self.fc = nn.Linear(c.text, c.cond * 2)

    def forward(self, t, eps):
        x = torch.relu(self.fc(t))
        mu, logvar = x[:, : self.c], x[:, self.c:]
        return eps * torch.exp(logvar * 0.5) + mu, mu, logvar


class Stage1G(nn.Module):
    def __init__(self, c):
        super().__init__()
        ngf = c.gf * 8
        self.ngf = ngf
        self.ca_net = CANet(c)
        self.fc = nn.Sequential(nn.Linear(c.z + c.cond, ngf * 16, bias=False),
                                nn.BatchNorm1d(ngf * 16), nn.ReLU(True))
        n_up = log2(c.s1 // 4)
        for i in range(n_up):
            setattr(self, f"upsample{i + 1}", up_block(ngf >> i, ngf >> (i + 1)))
        self.ups = [getattr(self, f"upsample{i + 1}") for i in range(n_up)]
        self.img = nn.Sequential(conv3x3(ngf >> n_up, 3), nn.Tanh())

    def forward(self, t, z, eps):
        c, mu, logvar = self.ca_net(t, eps)
        h = self.fc(torch.cat([z, c], 1)).view(-1, self.ngf, 4, 4)
        for up in self.ups:
            h = up(h)
        return self.img(h), mu, logvar


class ResBlock(nn.Module):
    def __init__(self, ch):
        super().__init__()
        self.block = nn.Sequential(conv3x3(ch, ch), nn.BatchNorm2d(ch), nn.ReLU(True),
                                   conv3x3(ch, ch), nn.BatchNorm2d(ch))

    def forward(self, x):
        return torch.relu(self.block(x) + x)


class Stage2G(nn.Module):
    """Stage-II G with the frozen Stage-I G inside (`STAGE1_G.*`)."""

    def __init__(self, c):
        super().__init__()
        ngf = c.gf
        self.cond = c.cond
        self.STAGE1_G = Stage1G(c)
        for p in self.STAGE1_G.parameters():
            p.requires_grad_(False)
        self.ca_net = CANet(c)
        self.encoder = nn.Sequential(
            conv3x3(3, ngf), nn.ReLU(True),
            nn.Conv2d(ngf, ngf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf * 2), nn.ReLU(True),
            nn.Conv2d(ngf * 2, ngf * 4, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf * 4), nn.ReLU(True))
        self.hr_joint = nn.Sequential(conv3x3(c.cond + ngf * 4, ngf * 4),
                                      nn.BatchNorm2d(ngf * 4), nn.ReLU(True))
        self.residual = nn.Sequential(*[ResBlock(ngf * 4) for _ in range(c.r_num)])
        n_up = log2(c.s2 // (c.s1 // 4))
        for i in range(n_up):
            setattr(self, f"upsample{i + 1}", up_block((ngf * 4) >> i, (ngf * 4) >> (i + 1)))
        self.ups = [getattr(self, f"upsample{i + 1}") for i in range(n_up)]
        self.img = nn.Sequential(conv3x3((ngf * 4) >> n_up, 3), nn.Tanh())

    def forward(self, t, z, eps1, eps2):
        stage1, _, _ = self.STAGE1_G(t, z, eps1)
        stage1 = stage1.detach()
        e = self.encoder(stage1)
        c, mu, logvar = self.ca_net(t, eps2)
        c = c.view(-1, self.cond, 1, 1).repeat(1, 1, e.shape[2], e.shape[3])
        h = self.residual(self.hr_joint(torch.cat([e, c], 1)))
        for up in self.ups:
            h = up(h)
        return stage1, self.img(h), mu, logvar


class Logits(nn.Module):
    """A D head (`D_GET_LOGITS`): probabilities, with or without c."""

    def __init__(self, ndf, cond):
        super().__init__()
        self.cond = cond
        if cond:
            self.outlogits = nn.Sequential(conv3x3(ndf * 8 + cond, ndf * 8), nn.BatchNorm2d(ndf * 8),
                                           nn.LeakyReLU(0.2, True), nn.Conv2d(ndf * 8, 1, 4, 4),
                                           nn.Sigmoid())
        else:
            self.outlogits = nn.Sequential(nn.Conv2d(ndf * 8, 1, 4, 4), nn.Sigmoid())

    def forward(self, h, c=None):
        if self.cond:
            c = c.view(-1, self.cond, 1, 1).repeat(1, 1, 4, 4)
            h = torch.cat([h, c], 1)
        return self.outlogits(h).view(-1)


class StageD(nn.Module):
    """Stage-I D (64x64) or Stage-II D (256x256, with the unconditional
    head): 4x4 stride-2 blocks down to 4x4, then (Stage-II) 3x3 blocks back
    to 8 df channels."""

    def __init__(self, c, stage):
        super().__init__()
        ndf = c.df
        n_down = log2((c.s1 if stage == 1 else c.s2) // 4)
        ch = ndf << max(4 - n_down, 0)
        layers = down_block(3, ch, bn=False)
        for _ in range(1, n_down):
            layers += down_block(ch, ch * 2)
            ch *= 2
        while ch > ndf * 8:
            layers += [conv3x3(ch, ch // 2), nn.BatchNorm2d(ch // 2), nn.LeakyReLU(0.2, True)]
            ch //= 2
        self.encode_img = nn.Sequential(*layers)
        self.get_cond_logits = Logits(ndf, c.cond)
        self.get_uncond_logits = Logits(ndf, 0) if stage == 2 else None

    def forward(self, x):
        return self.encode_img(x)


def d_loss(d, real, fake, mu):
    """The official `compute_discriminator_loss` (real, wrong, fake pairs)."""
    bce = nn.functional.binary_cross_entropy
    b = real.shape[0]
    cond = mu.detach()
    real_f, fake_f = d(real), d(fake.detach())
    ones, zeros = torch.ones(b), torch.zeros(b)
    err_real = bce(d.get_cond_logits(real_f, cond), ones)
    err_wrong = bce(d.get_cond_logits(real_f[: b - 1], cond[1:]), zeros[1:])
    err_fake = bce(d.get_cond_logits(fake_f, cond), zeros)
    if d.get_uncond_logits is None:
        return err_real + (err_fake + err_wrong) * 0.5
    u_real = bce(d.get_uncond_logits(real_f), ones)
    u_fake = bce(d.get_uncond_logits(fake_f), zeros)
    return (err_real + u_real) / 2.0 + (err_fake + err_wrong + u_fake) / 3.0


def g_loss(d, fake, mu):
    """The official `compute_generator_loss`."""
    bce = nn.functional.binary_cross_entropy
    f = d(fake)
    ones = torch.ones(fake.shape[0])
    err = bce(d.get_cond_logits(f, mu.detach()), ones)
    if d.get_uncond_logits is not None:
        err = err + bce(d.get_uncond_logits(f), ones)
    return err


def check(reference):
    """The fixtures' outputs and losses, within 1e-4."""
    ref = Path(reference) / "StackGAN-Pytorch"
    worst = {}

    def load(name):
        s = json.loads((ref / name / "structure.json").read_text())
        return Config(s["config"]), load_file(str(ref / name / "weights.safetensors")), \
            load_file(str(ref / name / "inputs.safetensors"))

    for name, build in [("STAGE1_G_small", lambda c: Stage1G(c)), ("STAGE2_G_small", lambda c: Stage2G(c)),
                        ("STAGE1_D_small", lambda c: StageD(c, 1)), ("STAGE2_D_small", lambda c: StageD(c, 2))]:
        c, w, x = load(name)
        for mode in ["train", "eval"]:
            net = build(c)
            net.load_state_dict(w)
            net.train(mode == "train")
            want = load_file(str(ref / name / f"outputs_{mode}.safetensors"))
            with torch.no_grad():
                if name == "STAGE1_G_small":
                    img, mu, logvar = net(x["text_embedding"], x["noise"], x["ca_eps"])
                    got = {"fake_img": img, "mu": mu, "logvar": logvar}
                elif name == "STAGE2_G_small":
                    s1, img, mu, logvar = net(x["text_embedding"], x["noise"], x["ca_eps"], x["ca_eps_stage2"])
                    got = {"stage1_img": s1, "fake_img": img, "mu": mu, "logvar": logvar}
                else:
                    h = net(x["image"])
                    got = {"img_embedding": h, "cond_logits": net.get_cond_logits(h, x["c_code"])}
                    if net.get_uncond_logits is not None:
                        got["uncond_logits"] = net.get_uncond_logits(h)
            worst[f"{name} {mode}"] = max(max_diff(got[k], want[k]) for k in want)
    c, w, _ = load("STAGE1_D_small")
    d = StageD(c, 1)
    d.load_state_dict(w)
    d.train()
    x = load_file(str(ref / "losses" / "inputs.safetensors"))
    want = load_file(str(ref / "losses" / "outputs.safetensors"))
    with torch.no_grad():
        got = {"errD": d_loss(d, x["real_imgs"], x["fake_imgs"], x["mu"]),
               "errG": g_loss(d, x["fake_imgs"], x["mu"]),
               "KL": kl_loss(x["mu"], x["logvar"])}
    worst["losses"] = max(max_diff(got[k], want[k]) for k in got if k in want)
    missing = [k for k in got if k not in want]
    ok = all(v <= 1e-4 for v in worst.values()) and not missing
    print(json.dumps({"max_abs_diff": worst, "tolerance": 1e-4, "ok": ok,
                      "unmatched_loss_names": missing}, indent=1))
    return ok


def bench(stage, preset, batch_size, repeats, threads):
    """Median ms of a training iteration and of generation at batch 1/16/32."""
    batch = batch_size
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    c = PRESETS[preset]
    g = Stage1G(c) if stage == 1 else Stage2G(c)
    d = StageD(c, stage)
    side = c.s1 if stage == 1 else c.s2
    real = torch.rand(batch, 3, side, side) * 2 - 1
    text = torch.randn(batch, c.text)
    opt_g = torch.optim.Adam([p for p in g.parameters() if p.requires_grad], lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(d.parameters(), lr=2e-4, betas=(0.5, 0.999))

    def draw(t, z):
        eps = torch.randn(t.shape[0], c.cond)
        if stage == 1:
            return g(t, z, eps)
        _, img, mu, logvar = g(t, z, eps, torch.randn(t.shape[0], c.cond))
        return img, mu, logvar

    def step():
        g.train()
        d.train()
        fake, mu, logvar = draw(text, torch.randn(batch, c.z))
        opt_d.zero_grad()
        d_loss(d, real, fake, mu).backward()
        opt_d.step()
        opt_g.zero_grad()
        (g_loss(d, fake, mu) + kl_loss(mu, logvar) * 2.0).backward()
        opt_g.step()


    def gen(k):
        t, z = torch.randn(k, c.text), torch.randn(k, c.z)

        def f():
            g.eval()
            with torch.no_grad():
                draw(t, z)
        return f

    return report(f"stackgan stage {stage}", batch, step, gen, repeats, warm=2)


def main():
    cli(__doc__, check, bench, [("--reference", dict(default="../shared/reference"))],
        [("--stage", dict(type=int, choices=[1, 2], default=1)),
         ("--preset", dict(choices=sorted(PRESETS), default="paper")),
         ("--batch-size", dict(type=int, default=8))],
        "reproduce the official fixtures within 1e-4")

if __name__ == "__main__":
    main()
