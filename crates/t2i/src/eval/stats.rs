//! Distribution metrics on feature sets, in float64:
//! Fréchet distance (FID, Heusel et al. 2017), Kernel Inception Distance
//! (KID, Bińkowski et al. 2018: unbiased MMD with the cubic polynomial
//! kernel over subsets) and Inception Score (Salimans et al. 2016, 10
//! splits).

use crate::error::{Error, Result};
use rand::seq::index::sample;
use rand::SeedableRng;
use tch::{Kind, Tensor};

fn f64s(x: &Tensor) -> Tensor {
    x.to_kind(Kind::Double).to_device(tch::Device::Cpu)
}

/// Mean `[d]` and covariance `[d, d]` (unbiased, as `np.cov`) of features
/// `[n, d]`.
pub fn mean_cov(features: &Tensor) -> Result<(Tensor, Tensor)> {
    let x = f64s(features);
    let n = x.size()[0];
    if n < 2 {
        return Err(Error::Config(format!(
            "a covariance needs at least 2 feature vectors, got {n}"
        )));
    }
    let mu = x.mean_dim([0i64].as_slice(), false, Kind::Double);
    let c = &x - &mu;
    let cov = c.tr().matmul(&c) / (n - 1) as f64;
    Ok((mu, cov))
}

/// Symmetric square root of a symmetric positive semi-definite matrix
/// (eigenvalues below zero, from rounding, are clipped).
fn sqrt_psd(m: &Tensor) -> Tensor {
    let (l, v) = m.linalg_eigh("L");
    let s = l.clamp_min(0.0).sqrt();
    (&v * s.unsqueeze(0)).matmul(&v.tr())
}

/// Fréchet distance between N(mu1, s1) and N(mu2, s2):
/// |mu1 - mu2|^2 + tr(s1 + s2 - 2 (s1 s2)^(1/2)).
///
/// tr((s1 s2)^(1/2)) is computed as the trace of the square root of the
/// symmetric matrix s1^(1/2) s2 s1^(1/2) (same eigenvalues as s1 s2), which
/// is stable where a general matrix square root is not. As pytorch-fid
/// does, an imaginary component above 1e-3 (an eigenvalue below -1e-6) is an
/// error rather than silently dropped.
pub fn frechet_distance(mu1: &Tensor, s1: &Tensor, mu2: &Tensor, s2: &Tensor) -> Result<f64> {
    let (mu1, s1, mu2, s2) = (f64s(mu1), f64s(s1), f64s(mu2), f64s(s2));
    let diff = &mu1 - &mu2;
    let r1 = sqrt_psd(&s1);
    let m = r1.matmul(&s2).matmul(&r1);
    let m = (&m + m.tr()) / 2.0; // exact symmetry for eigh
    let l = m.linalg_eigvalsh("L");
    let lmin = l.min().double_value(&[]);
    if lmin < -1e-6 {
        return Err(Error::Config(format!(
            "Fréchet distance: imaginary component {:.3e} in the covariance square root",
            (-lmin).sqrt()
        )));
    }
    let tr_covmean = l.clamp_min(0.0).sqrt().sum(Kind::Double).double_value(&[]);
    Ok(diff.dot(&diff).double_value(&[])
        + s1.trace().double_value(&[])
        + s2.trace().double_value(&[])
        - 2.0 * tr_covmean)
}

/// FID-style distance between two feature sets `[n, d]`, `[m, d]`.
pub fn fid(a: &Tensor, b: &Tensor) -> Result<f64> {
    let (m1, s1) = mean_cov(a)?;
    let (m2, s2) = mean_cov(b)?;
    frechet_distance(&m1, &s1, &m2, &s2)
}

/// Unbiased squared MMD with k(x, y) = (x.y / d + 1)^3.
fn poly_mmd2(x: &Tensor, y: &Tensor) -> f64 {
    let d = x.size()[1] as f64;
    let k = |p: &Tensor, q: &Tensor| (p.matmul(&q.tr()) / d + 1.0).pow_tensor_scalar(3);
    let (kxx, kyy, kxy) = (k(x, x), k(y, y), k(x, y));
    let (m, n) = (x.size()[0] as f64, y.size()[0] as f64);
    let off = |kk: &Tensor| kk.sum(Kind::Double).double_value(&[]) - kk.trace().double_value(&[]);
    off(&kxx) / (m * (m - 1.0)) + off(&kyy) / (n * (n - 1.0))
        - 2.0 * kxy.mean(Kind::Double).double_value(&[])
}

/// KID over given subsets: for each pair of index lists, the unbiased MMD^2
/// of those rows of `a` and `b`. Returns (mean, population std).
pub fn kid_on_subsets(a: &Tensor, b: &Tensor, subsets: &[(Vec<i64>, Vec<i64>)]) -> (f64, f64) {
    let (a, b) = (f64s(a), f64s(b));
    let v: Vec<f64> = subsets
        .iter()
        .map(|(i, j)| {
            poly_mmd2(
                &a.index_select(0, &Tensor::from_slice(i)),
                &b.index_select(0, &Tensor::from_slice(j)),
            )
        })
        .collect();
    mean_std(&v)
}

/// KID with `n_subsets` random subsets of `subset_size` rows of each set
/// (without replacement; the whole sets when they are smaller), drawn from
/// `seed`. Returns (mean, population std).
pub fn kid(
    a: &Tensor,
    b: &Tensor,
    subset_size: usize,
    n_subsets: usize,
    seed: u64,
) -> Result<(f64, f64)> {
    let (na, nb) = (a.size()[0] as usize, b.size()[0] as usize);
    let m = subset_size.min(na).min(nb);
    if m < 2 {
        return Err(Error::Config(format!(
            "KID needs at least 2 feature vectors per set, got {na} and {nb}"
        )));
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let pick = |n: usize, rng: &mut rand_chacha::ChaCha8Rng| -> Vec<i64> {
        sample(rng, n, m).into_iter().map(|i| i as i64).collect()
    };
    let subsets: Vec<_> = (0..n_subsets.max(1))
        .map(|_| (pick(na, &mut rng), pick(nb, &mut rng)))
        .collect();
    Ok(kid_on_subsets(a, b, &subsets))
}

/// Inception Score of class probabilities `[n, k]`: exp(E KL(p(y|x) || p(y)))
/// on each of `splits` consecutive splits (sizes as `np.array_split`).
/// Returns (mean, population std) over the splits.
pub fn inception_score(probs: &Tensor, splits: usize) -> Result<(f64, f64)> {
    let p = f64s(probs);
    let n = p.size()[0] as usize;
    if splits == 0 || n < splits {
        return Err(Error::Config(format!(
            "Inception Score needs at least {splits} samples, got {n}"
        )));
    }
    let (q, r) = (n / splits, n % splits);
    let mut start = 0i64;
    let mut scores = Vec::with_capacity(splits);
    for s in 0..splits {
        let len = (q + usize::from(s < r)) as i64;
        let part = p.narrow(0, start, len);
        start += len;
        let py = part.mean_dim([0i64].as_slice(), true, Kind::Double);
        let kl = (part.xlogy(&part) - &part * py.log()).sum_dim_intlist(
            [1i64].as_slice(),
            false,
            Kind::Double,
        );
        scores.push(kl.mean(Kind::Double).double_value(&[]).exp());
    }
    Ok(mean_std(&scores))
}

/// CLIP score (Hessel et al. 2021 without their 2.5
/// factor): `100 * max(cos(E_I(x), E_T(t)), 0)` for each row pair of image
/// and text embeddings `[n, d]`, averaged. The embeddings come from a CLIP
/// model (StyleT2I's); this is the formula every caller shares.
pub fn clip_score(image: &Tensor, text: &Tensor) -> Result<f64> {
    if image.size() != text.size() || image.dim() != 2 || image.size()[0] == 0 {
        return Err(Error::Config(format!(
            "CLIP score needs image and text embeddings of one shape [n, d], got {:?} and {:?}",
            image.size(),
            text.size()
        )));
    }
    let (a, b) = (f64s(image), f64s(text));
    let cos = (&a * &b).sum_dim_intlist([1i64].as_slice(), false, Kind::Double)
        / (a.norm_scalaropt_dim(2, [1i64], false) * b.norm_scalaropt_dim(2, [1i64], false))
            .clamp_min(1e-12);
    Ok(100.0 * cos.clamp_min(0.0).mean(Kind::Double).double_value(&[]))
}

/// Mean and population standard deviation (`np.std`).
pub fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len().max(1) as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
    (mean, var.sqrt())
}

/// Area under the ROC curve of `scores` for the positives `labels`
/// (Mann-Whitney U / (P N), ties counted half). `None` without both classes.
pub fn auroc(scores: &[f64], labels: &[bool]) -> Option<f64> {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    // average ranks (1-based) over ties
    let mut ranks = vec![0.0; scores.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && scores[idx[j + 1]] == scores[idx[i]] {
            j += 1;
        }
        let r = (i + j) as f64 / 2.0 + 1.0;
        for &k in &idx[i..=j] {
            ranks[k] = r;
        }
        i = j + 1;
    }
    let p = labels.iter().filter(|&&l| l).count() as f64;
    let n = labels.len() as f64 - p;
    if p == 0.0 || n == 0.0 {
        return None;
    }
    let sum_pos: f64 = ranks
        .iter()
        .zip(labels)
        .filter(|(_, &l)| l)
        .map(|(r, _)| r)
        .sum();
    Some((sum_pos - p * (p + 1.0) / 2.0) / (p * n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auroc_cases() {
        assert_eq!(
            auroc(&[0.1, 0.2, 0.8, 0.9], &[false, false, true, true]),
            Some(1.0)
        );
        assert_eq!(
            auroc(&[0.9, 0.8, 0.2, 0.1], &[false, false, true, true]),
            Some(0.0)
        );
        assert_eq!(
            auroc(&[0.5, 0.5, 0.5, 0.5], &[false, true, false, true]),
            Some(0.5)
        );
        // three of the four positive-negative pairs are ordered right
        let a = auroc(&[0.1, 0.4, 0.35, 0.8], &[false, false, true, true]).unwrap();
        assert!((a - 0.75).abs() < 1e-12, "{a}");
        assert_eq!(auroc(&[0.1, 0.2], &[true, true]), None);
    }
}
