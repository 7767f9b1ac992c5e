//! The CPU features this binary was built to require.
//!
//! The default build runs on any x86-64 CPU: curve25519-dalek picks its AVX2 code for Ed25519
//! verification at run time. The build for CPUs with AVX-512 IFMA (README, "Performance")
//! compiles curve25519-dalek's AVX-512 backend in instead, which that crate selects at compile
//! time only: such a binary executes those instructions unconditionally, and on a CPU without
//! them it would die of an illegal instruction at the first signature it checks. It refuses to
//! start instead, saying why.

/// The features a build with `-C target-feature=+avx512ifma,+avx512vl` needs from the CPU.
#[cfg(all(
    target_arch = "x86_64",
    target_feature = "avx512ifma",
    target_feature = "avx512vl"
))]
fn detected() -> Vec<(&'static str, bool)> {
    vec![
        (
            "avx512ifma",
            std::arch::is_x86_feature_detected!("avx512ifma"),
        ),
        ("avx512vl", std::arch::is_x86_feature_detected!("avx512vl")),
    ]
}

/// A default build needs nothing beyond the target's baseline.
#[cfg(not(all(
    target_arch = "x86_64",
    target_feature = "avx512ifma",
    target_feature = "avx512vl"
)))]
fn detected() -> Vec<(&'static str, bool)> {
    Vec::new()
}

/// Why this CPU cannot run a binary built to require `features` (name, whether the CPU has
/// it), or `None` if it has them all.
fn refusal(features: &[(&str, bool)]) -> Option<String> {
    let missing: Vec<&str> = features
        .iter()
        .filter(|(_, present)| !present)
        .map(|(name, _)| *name)
        .collect();
    (!missing.is_empty()).then(|| {
        format!(
            "this latchkey binary was built for CPUs with {}, which this CPU lacks; \
             rebuild it without those target features (the default build runs on any x86-64 \
             CPU)",
            missing.join(" and ")
        )
    })
}

/// `Err` with a message naming the missing features if this CPU cannot run this binary.
pub fn check() -> Result<(), String> {
    refusal(&detected()).map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cpu_with_every_feature_is_accepted() {
        assert_eq!(refusal(&[]), None);
        assert_eq!(refusal(&[("avx512ifma", true), ("avx512vl", true)]), None);
    }

    #[test]
    fn a_missing_feature_is_named() {
        let message = refusal(&[("avx512ifma", false), ("avx512vl", true)]).expect("refused");
        assert!(message.contains("avx512ifma"), "{message}");
        assert!(!message.contains("avx512vl"), "{message}");
    }
}
