//! Run-time device choice: `cpu`, `cuda`, `cuda:N`, or `auto` (CUDA when
//! libtorch sees a GPU, else CPU).

use crate::error::{Error, Result};
use tch::Device;

/// Parses a device name; asking for CUDA where there is none is an error.
pub fn parse_device(name: &str) -> Result<Device> {
    let cuda_count = || {
        if tch::Cuda::is_available() {
            tch::Cuda::device_count() as usize
        } else {
            0
        }
    };
    match name {
        "auto" => Ok(if cuda_count() > 0 {
            Device::Cuda(0)
        } else {
            Device::Cpu
        }),
        "cpu" => Ok(Device::Cpu),
        _ => {
            let idx = match name.strip_prefix("cuda") {
                Some("") => 0,
                Some(rest) => rest
                    .strip_prefix(':')
                    .and_then(|n| n.parse::<usize>().ok())
                    .ok_or_else(|| {
                        Error::Device(format!("unknown device '{name}' (use cpu, cuda or cuda:N)"))
                    })?,
                None => {
                    return Err(Error::Device(format!(
                        "unknown device '{name}' (use cpu, cuda or cuda:N)"
                    )))
                }
            };
            let n = cuda_count();
            if n == 0 {
                let why = if cfg!(feature = "cuda") {
                    "no CUDA GPU is visible to libtorch"
                } else {
                    "this build has no CUDA support (rebuild with T2I_CUDA=1 scripts/setup.sh and --features cuda)"
                };
                return Err(Error::Device(format!(
                    "device '{name}' requested but {why}"
                )));
            }
            if idx >= n {
                return Err(Error::Device(format!(
                    "device '{name}' requested but only {n} CUDA device(s) exist"
                )));
            }
            Ok(Device::Cuda(idx))
        }
    }
}

/// A short name for records: `cpu` or `cuda:N`.
pub fn device_name(d: Device) -> String {
    match d {
        Device::Cuda(i) => format!("cuda:{i}"),
        _ => "cpu".into(),
    }
}

/// Makes the CPU treat denormal floats as zero, in this thread and in every
/// thread it starts afterwards (libtorch's OpenMP pool inherits the
/// setting), as `torch.set_flush_denormal(True)` does. Without it, values
/// below 1.2e-38 (softmax weights of far-off regions, vanishing gradients)
/// make each multiply-add take a slow microcode path, and a training step
/// grows slower as training sharpens attention. Call it first in `main`.
/// Returns whether the CPU supports it (x86-64 with SSE; elsewhere a no-op).
pub fn flush_denormals() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        // MXCSR bit 15: flush-to-zero; bit 6: denormals-are-zero
        let mut csr: u32 = 0;
        // SAFETY: stmxcsr/ldmxcsr read and write the SSE control register of
        // this thread only; FTZ and DAZ change rounding of subnormals alone.
        unsafe {
            std::arch::asm!("stmxcsr [{}]", in(reg) &mut csr, options(nostack));
            csr |= (1 << 15) | (1 << 6);
            std::arch::asm!("ldmxcsr [{}]", in(reg) &csr, options(nostack, readonly));
        }
        true
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Memory the system can still give this process (Linux `MemAvailable`),
/// in bytes; `None` where it cannot be read.
pub fn available_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line
        .trim_start_matches("MemAvailable:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn parse() {
        assert_eq!(parse_device("cpu").unwrap(), Device::Cpu);
        assert!(parse_device("tpu").is_err());
        if !tch::Cuda::is_available() {
            let e = parse_device("cuda:0").unwrap_err().to_string();
            assert!(e.contains("cuda"), "{e}");
        }
    }
}
