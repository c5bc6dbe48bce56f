"""AttnGAN (3 stages) in plain PyTorch eager: the twin t2i's AttnGAN is timed
against (bench/compare.sh).

Written from the spec (../shared/spec) and the reference fixtures' key lists
and shapes (../shared/reference/AttnGAN/*/structure.json), so the fixtures'
weights load by name: `check` reproduces the official G_NET, D_NET64/128/256,
RNN_ENCODER outputs and the DAMSM and discriminator losses within 1e-4.
`bench` times one training iteration as the official trainer runs it (text
encoder forward, every D update, then G with the DAMSM word and sentence
losses through the Inception-v3 image encoder at 299x299 and the KL term,
Adam) on a fixed in-memory batch, and generation.
"""

import json
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file

from common import cli, kl_loss, max_diff, report

GAMMA1, GAMMA2, GAMMA3, LAMBDA = 4.0, 5.0, 10.0, 5.0


class Config:
    def __init__(self, c):
        self.gf = c["GAN.GF_DIM"]
        self.df = c["GAN.DF_DIM"]
        self.z = c["GAN.Z_DIM"]
        self.cond = c["GAN.CONDITION_DIM"]
        self.r_num = c["GAN.R_NUM"]
        self.emb = c["TEXT.EMBEDDING_DIM"]
        self.words = c["TEXT.WORDS_NUM"]
        # t2i's settings beyond the official ones: first-stage side, stages
        self.base = c.get("BASE_SIZE", 64)
        self.branches = c.get("TREE.BRANCH_NUM", 3)


PRESETS = {
    "paper": Config({"GAN.GF_DIM": 32, "GAN.DF_DIM": 64, "GAN.Z_DIM": 100, "GAN.CONDITION_DIM": 100,
                     "GAN.R_NUM": 2, "TEXT.EMBEDDING_DIM": 256, "TEXT.WORDS_NUM": 18}),
    # t2i's `tiny`: two stages 32 -> 64, the official networks with t2i's
    # rules for a 32-pixel first stage, and the DAMSM `tiny` small CNN
    "tiny": Config({"GAN.GF_DIM": 16, "GAN.DF_DIM": 16, "GAN.Z_DIM": 100, "GAN.CONDITION_DIM": 64,
                    "GAN.R_NUM": 1, "TEXT.EMBEDDING_DIM": 128, "TEXT.WORDS_NUM": 18,
                    "BASE_SIZE": 32, "TREE.BRANCH_NUM": 2}),
}
PAPER = PRESETS["paper"]


def glu(x):
    n = x.size(1) // 2
    return x[:, :n] * torch.sigmoid(x[:, n:])


class GLU(nn.Module):
    def forward(self, x):
        return glu(x)


def conv3x3(cin, cout):
    return nn.Conv2d(cin, cout, 3, 1, 1, bias=False)


def up_block(cin, cout):
    return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), conv3x3(cin, cout * 2),
                         nn.BatchNorm2d(cout * 2), GLU())


class ResBlock(nn.Module):
    def __init__(self, ch):
        super().__init__()
        self.block = nn.Sequential(conv3x3(ch, ch * 2), nn.BatchNorm2d(ch * 2), GLU(),
                                   conv3x3(ch, ch), nn.BatchNorm2d(ch))

    def forward(self, x):
        return self.block(x) + x


class CANet(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c.cond
        self.fc = nn.Linear(c.emb, c.cond * 4)

    def forward(self, t, eps):
        x = glu(self.fc(t))
        mu, logvar = x[:, : self.c], x[:, self.c:]
        return eps * torch.exp(logvar * 0.5) + mu, mu, logvar


class InitStage(nn.Module):
    def __init__(self, ngf, c, n_up=4):
        super().__init__()
        self.ngf = ngf
        self.fc = nn.Sequential(nn.Linear(c.z + c.cond, ngf * 32, bias=False), nn.BatchNorm1d(ngf * 32), GLU())
        for i in range(n_up):
            setattr(self, f"upsample{i + 1}", up_block(ngf >> i, ngf >> (i + 1)))
        self.ups = [getattr(self, f"upsample{i + 1}") for i in range(n_up)]

    def forward(self, z, c):
        h = self.fc(torch.cat([c, z], 1)).view(-1, self.ngf, 4, 4)
        for up in self.ups:
            h = up(h)
        return h


class Attention(nn.Module):
    """The generator's word attention (`GlobalAttentionGeneral`), its mask
    repeated as the official code repeats it."""

    def __init__(self, idf, cdf):
        super().__init__()
        self.conv_context = nn.Conv2d(cdf, idf, 1, 1, 0, bias=False)

    def forward(self, h, words, mask):
        b, _, ih, iw = h.shape
        q = ih * iw
        target = h.view(b, -1, q).transpose(1, 2)
        source = self.conv_context(words.unsqueeze(3)).squeeze(3)  # [b, idf, L]
        attn = torch.bmm(target, source).view(b * q, -1)
        if mask is not None:
            attn = attn.masked_fill(mask.repeat(q, 1), -float("inf"))
        attn = F.softmax(attn, dim=1).view(b, q, -1).transpose(1, 2).contiguous()  # [b, L, q]
        ctx = torch.bmm(source, attn).view(b, -1, ih, iw)
        return ctx, attn.view(b, -1, ih, iw)


class NextStage(nn.Module):
    def __init__(self, ngf, c):
        super().__init__()
        self.att = Attention(ngf, c.emb)
        self.residual = nn.Sequential(*[ResBlock(ngf * 2) for _ in range(c.r_num)])
        self.upsample = up_block(ngf * 2, ngf)

    def forward(self, h, words, mask):
        ctx, att = self.att(h, words, mask)
        return self.upsample(self.residual(torch.cat([h, ctx], 1))), att


class ImageHead(nn.Module):
    def __init__(self, ngf):
        super().__init__()
        self.img = nn.Sequential(conv3x3(ngf, 3), nn.Tanh())

    def forward(self, h):
        return self.img(h)


class GNet(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.ca_net = CANet(c)
        n_up = log2(c.base // 4)
        self.h_net1 = InitStage(c.gf << n_up, c, n_up)
        self.img_net1 = ImageHead(c.gf)
        for k in range(2, c.branches + 1):
            setattr(self, f"h_net{k}", NextStage(c.gf, c))
            setattr(self, f"img_net{k}", ImageHead(c.gf))
        self.branches = c.branches

    def forward(self, z, sent, words, mask, eps):
        c, mu, logvar = self.ca_net(sent, eps)
        h = self.h_net1(z, c)
        images, attention = [self.img_net1(h)], []
        for k in range(2, self.branches + 1):
            h, a = getattr(self, f"h_net{k}")(h, words, mask)
            images.append(getattr(self, f"img_net{k}")(h))
            attention.append(a)
        return images, attention, mu, logvar


def log2(x):
    return x.bit_length() - 1


def lrelu_block(cin, cout):
    return nn.Sequential(conv3x3(cin, cout), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2, True))


def down_block(cin, cout):
    return nn.Sequential(nn.Conv2d(cin, cout, 4, 2, 1, bias=False), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2, True))


class Logits(nn.Module):
    def __init__(self, ndf, nef, cond):
        super().__init__()
        self.nef = nef
        if cond:
            self.jointConv = lrelu_block(ndf * 8 + nef, ndf * 8)
        self.cond = cond
        self.outlogits = nn.Sequential(nn.Conv2d(ndf * 8, 1, 4, 4), nn.Sigmoid())

    def forward(self, h, c=None):
        if self.cond and c is not None:
            h = self.jointConv(torch.cat([h, c.view(-1, self.nef, 1, 1).repeat(1, 1, 4, 4)], 1))
        return self.outlogits(h).view(-1)


class DNet(nn.Module):
    """D_NET64 / D_NET128 / D_NET256."""

    def __init__(self, c, side):
        super().__init__()
        ndf = c.df
        self.side = side
        if side == 32:
            # t2i's `tiny` first stage: an 8x encoder (not in the official code)
            self.img_code_s8 = nn.Sequential(
                nn.Conv2d(3, ndf * 2, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, True),
                *down_block(ndf * 2, ndf * 4), *down_block(ndf * 4, ndf * 8))
            self.UNCOND_DNET = Logits(ndf, c.emb, False)
            self.COND_DNET = Logits(ndf, c.emb, True)
            return
        self.img_code_s16 = nn.Sequential(
            nn.Conv2d(3, ndf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, True),
            *down_block(ndf, ndf * 2), *down_block(ndf * 2, ndf * 4), *down_block(ndf * 4, ndf * 8))
        self.side = side
        if side >= 128:
            self.img_code_s32 = down_block(ndf * 8, ndf * 16)
        if side == 128:
            self.img_code_s32_1 = lrelu_block(ndf * 16, ndf * 8)
        if side == 256:
            self.img_code_s64 = down_block(ndf * 16, ndf * 32)
            self.img_code_s64_1 = lrelu_block(ndf * 32, ndf * 16)
            self.img_code_s64_2 = lrelu_block(ndf * 16, ndf * 8)
        self.UNCOND_DNET = Logits(ndf, c.emb, False)
        self.COND_DNET = Logits(ndf, c.emb, True)

    def forward(self, x):
        if self.side == 32:
            return self.img_code_s8(x)
        x = self.img_code_s16(x)
        if self.side == 128:
            x = self.img_code_s32_1(self.img_code_s32(x))
        elif self.side == 256:
            x = self.img_code_s64_2(self.img_code_s64_1(self.img_code_s64(self.img_code_s32(x))))
        return x


class RNNEncoder(nn.Module):
    """The DAMSM text encoder: embedding, dropout, bidirectional LSTM."""

    def __init__(self, ntoken, nhidden):
        super().__init__()
        self.encoder = nn.Embedding(ntoken, 300)
        self.drop = nn.Dropout(0.5)
        self.rnn = nn.LSTM(300, nhidden // 2, 1, batch_first=True, bidirectional=True)
        self.nhidden = nhidden

    def forward(self, captions, cap_lens, hidden):
        emb = self.drop(self.encoder(captions))
        packed = nn.utils.rnn.pack_padded_sequence(emb, cap_lens.tolist(), batch_first=True)
        out, (h, _) = self.rnn(packed, hidden)
        out = nn.utils.rnn.pad_packed_sequence(out, batch_first=True)[0]
        return out.transpose(1, 2), h.transpose(0, 1).contiguous().view(-1, self.nhidden)


class CNNEncoder(nn.Module):
    """The DAMSM image encoder: torchvision's Inception-v3 body to Mixed_7c
    (frozen), 1x1 projection of Mixed_6e's 17x17 features, linear projection
    of the pooled code."""

    def __init__(self, nef):
        super().__init__()
        from torchvision.models import inception_v3
        m = inception_v3(weights=None, aux_logits=False, init_weights=False)
        for n in ["Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "Conv2d_3b_1x1", "Conv2d_4a_3x3",
                  "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d",
                  "Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c"]:
            setattr(self, n, getattr(m, n))
        for p in self.parameters():
            p.requires_grad_(False)
        self.emb_features = nn.Conv2d(768, nef, 1, 1, 0, bias=False)
        self.emb_cnn_code = nn.Linear(2048, nef)

    def forward(self, x):
        x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, 3, 2)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = F.max_pool2d(x, 3, 2)
        for n in ["Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e"]:
            x = getattr(self, n)(x)
        features = x
        for n in ["Mixed_7a", "Mixed_7b", "Mixed_7c"]:
            x = getattr(self, n)(x)
        x = F.avg_pool2d(x, 8).flatten(1)
        return self.emb_features(features), self.emb_cnn_code(x)


class SmallCNNEncoder(nn.Module):
    """t2i's DAMSM `tiny` image encoder: four 4x4 stride-2 convolutions
    (the third's 8x8 map the regions, the fourth's mean the global code),
    1x1 and linear projections."""

    def __init__(self, nef, w=32):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, w, 4, 2, 1), nn.LeakyReLU(0.2, True),
                                  *down_block(w, 2 * w), *down_block(2 * w, 4 * w))
        self.head = down_block(4 * w, 8 * w)
        self.emb_features = nn.Conv2d(4 * w, nef, 1, 1, 0, bias=False)
        self.emb_cnn_code = nn.Linear(8 * w, nef)

    def forward(self, x):
        f = self.body(x)
        g = self.head(f).mean(dim=(2, 3))
        return self.emb_features(f), self.emb_cnn_code(g)


def cosine(a, b, eps=1e-8):
    return ((a * b).sum(1) / (a.norm(2, 1) * b.norm(2, 1)).clamp(min=eps)).squeeze()


def same_class_mask(class_ids):
    if class_ids is None:
        return None
    m = class_ids.view(1, -1) == class_ids.view(-1, 1)
    return m & ~torch.eye(len(class_ids), dtype=torch.bool)


def sent_loss(cnn_code, rnn_code, labels, class_ids):
    """DAMSM sentence loss (eq. 11-13), both directions."""
    c, r = cnn_code.unsqueeze(0), rnn_code.unsqueeze(0)
    scores = torch.bmm(c, r.transpose(1, 2))
    norm = torch.bmm(c.norm(2, 2, keepdim=True), r.norm(2, 2, keepdim=True).transpose(1, 2))
    scores = (scores / norm.clamp(min=1e-8) * GAMMA3).squeeze()
    mask = same_class_mask(class_ids)
    if mask is not None:
        scores = scores.masked_fill(mask, -float("inf"))
    return F.cross_entropy(scores, labels), F.cross_entropy(scores.t(), labels)


def func_attention(query, context):
    b, _, ql = query.shape
    ih, iw = context.shape[2], context.shape[3]
    context = context.view(b, -1, ih * iw)
    attn = torch.bmm(context.transpose(1, 2), query).view(b * ih * iw, ql)
    attn = F.softmax(attn, dim=1).view(b, ih * iw, ql).transpose(1, 2).contiguous().view(b * ql, ih * iw)
    attn = F.softmax(attn * GAMMA1, dim=1).view(b, ql, ih * iw)
    return torch.bmm(context, attn.transpose(1, 2)), attn.view(b, -1, ih, iw)


def words_loss(img_features, words_emb, labels, cap_lens, class_ids):
    """DAMSM word loss (eq. 7-10), both directions; attention maps."""
    b = words_emb.shape[0]
    sims, maps = [], []
    for i in range(b):
        n = int(cap_lens[i])
        word = words_emb[i, :, :n].unsqueeze(0).repeat(b, 1, 1)
        ctx, attn = func_attention(word, img_features)
        maps.append(attn[i].unsqueeze(0))
        w = word.transpose(1, 2).reshape(b * n, -1)
        c = ctx.transpose(1, 2).reshape(b * n, -1)
        s = torch.exp(cosine(w, c).view(b, n) * GAMMA2).sum(1, keepdim=True).log()
        sims.append(s)
    sims = torch.cat(sims, 1) * GAMMA3
    mask = same_class_mask(class_ids)
    if mask is not None:
        sims = sims.masked_fill(mask, -float("inf"))
    return F.cross_entropy(sims, labels), F.cross_entropy(sims.t(), labels), maps


def d_loss(d, real, fake, sent):
    """The official `discriminator_loss`."""
    bce = F.binary_cross_entropy
    b = real.shape[0]
    ones, zeros = torch.ones(b), torch.zeros(b)
    rf, ff = d(real), d(fake.detach())
    cond_real = bce(d.COND_DNET(rf, sent), ones)
    cond_fake = bce(d.COND_DNET(ff, sent), zeros)
    cond_wrong = bce(d.COND_DNET(rf[: b - 1], sent[1:]), zeros[1:])
    real_err = bce(d.UNCOND_DNET(rf), ones)
    fake_err = bce(d.UNCOND_DNET(ff), zeros)
    return (real_err + cond_real) / 2.0 + (fake_err + cond_fake + cond_wrong) / 3.0


def g_loss(ds, image_encoder, fakes, words, sent, labels, cap_lens, class_ids):
    """The official `generator_loss`: every D's terms, then DAMSM on the last image."""
    bce = F.binary_cross_entropy
    ones = torch.ones(sent.shape[0])
    total = 0.0
    for d, fake in zip(ds, fakes):
        f = d(fake)
        total = total + bce(d.COND_DNET(f, sent), ones) + bce(d.UNCOND_DNET(f), ones)
    region, code = image_encoder(fakes[-1])
    w0, w1, _ = words_loss(region, words, labels, cap_lens, class_ids)
    s0, s1 = sent_loss(code, sent, labels, class_ids)
    return total + (w0 + w1) * LAMBDA + (s0 + s1) * LAMBDA


def check(reference):
    ref = Path(reference) / "AttnGAN"
    worst = {}

    def load(name):
        s = json.loads((ref / name / "structure.json").read_text())
        return Config(s["config"]), load_file(str(ref / name / "weights.safetensors")), \
            load_file(str(ref / name / "inputs.safetensors"))

    for mode in ["train", "eval"]:
        c, w, x = load("G_NET_small")
        g = GNet(c)
        g.load_state_dict(w)
        g.train(mode == "train")
        want = load_file(str(ref / "G_NET_small" / f"outputs_{mode}.safetensors"))
        with torch.no_grad():
            imgs, atts, mu, logvar = g(x["z_code"], x["sent_emb"], x["word_embs"], x["mask"], x["ca_eps"])
        got = {"fake_img1": imgs[0], "fake_img2": imgs[1], "fake_img3": imgs[2], "att1": atts[0],
               "att2": atts[1], "mu": mu, "logvar": logvar}
        worst[f"G_NET_small {mode}"] = max(max_diff(got[k], want[k]) for k in want)
        for side in (64, 128, 256):
            name = f"D_NET{side}_small"
            c, w, x = load(name)
            d = DNet(c, side)
            d.load_state_dict(w)
            d.train(mode == "train")
            want = load_file(str(ref / name / f"outputs_{mode}.safetensors"))
            with torch.no_grad():
                h = d(x["image"])
                got = {"x_code4": h, "cond_logits": d.COND_DNET(h, x["sent_emb"]), "uncond_logits": d.UNCOND_DNET(h)}
            worst[f"{name} {mode}"] = max(max_diff(got[k], want[k]) for k in want)
    s = json.loads((ref / "RNN_ENCODER_small" / "structure.json").read_text())
    w = load_file(str(ref / "RNN_ENCODER_small" / "weights.safetensors"))
    x = load_file(str(ref / "RNN_ENCODER_small" / "inputs.safetensors"))
    rnn = RNNEncoder(w["encoder.weight"].shape[0], s["config"]["TEXT.EMBEDDING_DIM"])
    rnn.load_state_dict(w)
    rnn.eval()
    want = load_file(str(ref / "RNN_ENCODER_small" / "outputs_eval.safetensors"))
    with torch.no_grad():
        words, sent = rnn(x["captions"], x["cap_lens"], (x["h0"], x["c0"]))
    worst["RNN_ENCODER_small eval"] = max(max_diff(words, want["words_emb"]), max_diff(sent, want["sent_emb"]))
    x = load_file(str(ref / "losses" / "inputs.safetensors"))
    want = load_file(str(ref / "losses" / "outputs.safetensors"))
    labels = torch.arange(4)
    got = {}
    with torch.no_grad():
        for suffix, ids in [("", x["class_ids"]), ("_noclass", None)]:
            w0, w1, maps = words_loss(x["img_features"], x["words_emb"], labels, x["cap_lens"], ids)
            s0, s1 = sent_loss(x["cnn_code"], x["sent_emb"], labels, ids)
            got.update({f"w_loss0{suffix}": w0, f"w_loss1{suffix}": w1, f"s_loss0{suffix}": s0,
                        f"s_loss1{suffix}": s1})
            if ids is not None:
                got.update({f"att_map{i}": m for i, m in enumerate(maps)})
        got["KL"] = kl_loss(x["mu"], x["logvar"])
        c, w, _ = load("D_NET64_small")
        d = DNet(c, 64)
        d.load_state_dict(w)
        d.train()
        got["errD_D_NET64_small"] = d_loss(d, x["d_real_imgs"], x["d_fake_imgs"], x["d_sent_emb"])
    worst["losses"] = max(max_diff(got[k], want[k]) for k in want)
    ok = all(v <= 1e-4 for v in worst.values())
    print(json.dumps({"max_abs_diff": worst, "tolerance": 1e-4, "ok": ok}, indent=1))
    return ok


def bench(preset, batch_size, repeats, threads, vocab=5450):
    batch = batch_size
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    c = PRESETS[preset]
    sides = [c.base << k for k in range(c.branches)]
    g, ds = GNet(c), [DNet(c, s) for s in sides]
    image = CNNEncoder(c.emb) if preset == "paper" else SmallCNNEncoder(c.emb)
    text, image = RNNEncoder(vocab, c.emb).eval(), image.eval()
    for p in list(text.parameters()) + list(image.parameters()):
        p.requires_grad_(False)
    reals = [torch.rand(batch, 3, s, s) * 2 - 1 for s in sides]
    lens = torch.sort(torch.randint(6, c.words + 1, (batch,)), descending=True)[0]
    lens[0] = c.words
    caps = torch.randint(1, vocab, (batch, c.words))
    for i, n in enumerate(lens.tolist()):
        caps[i, n:] = 0
    class_ids = torch.randint(0, 150, (batch,))
    labels = torch.arange(batch)
    opt_g = torch.optim.Adam(g.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_ds = [torch.optim.Adam(d.parameters(), lr=2e-4, betas=(0.5, 0.999)) for d in ds]

    def step():
        g.train()
        hidden = (torch.zeros(2, batch, c.emb // 2), torch.zeros(2, batch, c.emb // 2))
        words, sent = text(caps, lens, hidden)
        words, sent = words.detach(), sent.detach()
        mask = (caps == 0)[:, : words.shape[2]]
        fakes, _, mu, logvar = g(torch.randn(batch, c.z), sent, words, mask, torch.randn(batch, c.cond))
        for d, opt, real, fake in zip(ds, opt_ds, reals, fakes):
            d.train()
            opt.zero_grad()
            d_loss(d, real, fake, sent).backward()
            opt.step()
        opt_g.zero_grad()
        (g_loss(ds, image, fakes, words, sent, labels, lens, class_ids) + kl_loss(mu, logvar)).backward()
        opt_g.step()


    def gen(k):
        z, eps = torch.randn(k, c.z), torch.randn(k, c.cond)
        sent, words = torch.randn(k, c.emb), torch.randn(k, c.emb, c.words)
        mask = torch.zeros(k, c.words, dtype=torch.bool)

        def f():
            g.eval()
            with torch.no_grad():
                g(z, sent, words, mask, eps)
        return f

    return report("attngan", batch, step, gen, repeats, warm=1)


def main():
    cli(__doc__, check, bench, [("--reference", dict(default="../shared/reference"))],
        [("--preset", dict(choices=sorted(PRESETS), default="paper")),
         ("--batch-size", dict(type=int, default=4))],
        "reproduce the official fixtures within 1e-4")

if __name__ == "__main__":
    main()
