//! Training precision: fp32, or bf16 by libtorch's autocast (`--precision
//! bf16`): convolutions and matrix products run in bfloat16, reductions,
//! losses and the optimiser in fp32, the weights (master copy) stay fp32.
//! Fast on CPUs with AVX512-BF16 or AMX and on CUDA GPUs from Ampere on.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// The arithmetic of a training step.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// Everything in float32.
    #[default]
    Fp32,
    /// Autocast to bfloat16 (master weights in float32).
    Bf16,
}

impl Precision {
    /// `fp32` or `bf16`; anything else is a one-line error.
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "fp32" => Ok(Self::Fp32),
            "bf16" => Ok(Self::Bf16),
            _ => Err(Error::Config(format!(
                "unknown precision '{name}' (use fp32 or bf16)"
            ))),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Fp32 => "fp32",
            Self::Bf16 => "bf16",
        }
    }
}

extern "C" {
    fn t2i_autocast_enter(cuda: i32, half: i32) -> i32;
    fn t2i_autocast_exit(cuda: i32, was_on: i32) -> i32;
}

/// An autocast region on the CPU and CUDA (both: a CUDA run's few CPU ops
/// are cast too); ends when dropped, also on unwinding.
struct Region {
    was_on: [i32; 2],
}

impl Region {
    fn enter() -> Result<Self> {
        // SAFETY: plain C calls on libtorch's thread-local autocast state
        let was_on = unsafe { [t2i_autocast_enter(0, 0), t2i_autocast_enter(1, 0)] };
        if was_on.contains(&-1) {
            let r = Region { was_on };
            drop(r);
            return Err(Error::Config(
                "libtorch refused to turn on bf16 autocast".into(),
            ));
        }
        Ok(Region { was_on })
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: as in `enter`; undoes it in reverse order
        unsafe {
            if self.was_on[1] != -1 {
                t2i_autocast_exit(1, self.was_on[1]);
            }
            if self.was_on[0] != -1 {
                t2i_autocast_exit(0, self.was_on[0]);
            }
        }
    }
}

/// Runs `f` in `precision`: as is for fp32, inside an autocast region for
/// bf16.
pub fn run<T>(precision: Precision, f: impl FnOnce() -> T) -> Result<T> {
    match precision {
        Precision::Fp32 => Ok(f()),
        Precision::Bf16 => {
            let _region = Region::enter()?;
            Ok(f())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind, Tensor};

    #[test]
    fn bf16_casts_matrix_products_and_ends_with_the_region() {
        let a = Tensor::randn([4, 8], (Kind::Float, Device::Cpu));
        let b = Tensor::randn([8, 3], (Kind::Float, Device::Cpu));
        let inside = run(Precision::Bf16, || a.matmul(&b)).unwrap();
        assert_eq!(inside.kind(), Kind::BFloat16);
        // nested regions: the inner end keeps the outer one on
        let nested = run(Precision::Bf16, || {
            let _ = run(Precision::Bf16, || a.matmul(&b)).unwrap();
            a.matmul(&b)
        })
        .unwrap();
        assert_eq!(nested.kind(), Kind::BFloat16);
        assert_eq!(a.matmul(&b).kind(), Kind::Float);
        assert_eq!(
            run(Precision::Fp32, || a.matmul(&b)).unwrap().kind(),
            Kind::Float
        );
        // within bf16's precision of the fp32 product
        let d = (inside.to_kind(Kind::Float) - a.matmul(&b)).abs().max();
        assert!(d.double_value(&[]) < 0.1);
        assert!(Precision::parse("fp16").is_err());
    }
}
