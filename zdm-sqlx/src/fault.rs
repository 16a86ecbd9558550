//! Fault injection for zdm's own tests (`fault-injection` feature): with
//! `ZDM_FAILPOINT=k` the process aborts at the k-th boundary it passes, like a `kill -9`
//! (no destructor runs, the kernel closes its sockets); `ZDM_FAILPOINT=<name>#<n>` aborts
//! at the n-th boundary of that name (`<name>#<n>:pause=<ms>` pauses there instead, to
//! line up a race); `ZDM_FAILPOINT=0` lists every boundary on stderr.
//! Without the feature, [`boundary`] is empty.

/// Marks a point where a real process could die: between two statements, before or after
/// a commit.
#[inline]
pub(crate) fn boundary(what: &str) {
    #[cfg(feature = "fault-injection")]
    imp::boundary(what);
    #[cfg(not(feature = "fault-injection"))]
    let _ = what;
}

#[cfg(feature = "fault-injection")]
mod imp {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;

    use std::collections::HashMap;
    use std::sync::Mutex;

    static PASSED: AtomicU64 = AtomicU64::new(0);

    enum Target {
        Nth(u64),
        Named(String, u64, Option<u64>),
    }

    fn target() -> Option<&'static Target> {
        static TARGET: OnceLock<Option<Target>> = OnceLock::new();
        TARGET
            .get_or_init(|| {
                let v = std::env::var("ZDM_FAILPOINT").ok()?;
                match v.rsplit_once('#') {
                    Some((name, rest)) => {
                        let (n, pause) = match rest.split_once(":pause=") {
                            Some((n, ms)) => (n, Some(ms.parse().ok()?)),
                            None => (rest, None),
                        };
                        Some(Target::Named(name.to_string(), n.parse().ok()?, pause))
                    }
                    None => Some(Target::Nth(v.parse().ok()?)),
                }
            })
            .as_ref()
    }

    pub(super) fn boundary(what: &str) {
        let Some(t) = target() else { return };
        let n = PASSED.fetch_add(1, Ordering::SeqCst) + 1;
        static SEEN: OnceLock<Mutex<HashMap<String, u64>>> = OnceLock::new();
        let of_kind = {
            let mut seen = SEEN.get_or_init(Default::default).lock().unwrap_or_else(|p| p.into_inner());
            let c = seen.entry(what.to_string()).or_default();
            *c += 1;
            *c
        };
        let hit = match t {
            Target::Nth(0) => {
                eprintln!("zdm boundary {n}: {what}");
                false
            }
            Target::Nth(k) => n == *k,
            Target::Named(name, k, Some(ms)) if name == what && of_kind == *k => {
                eprintln!("zdm failpoint {n}: {what} #{of_kind}: pausing {ms} ms");
                std::thread::sleep(std::time::Duration::from_millis(*ms));
                false
            }
            Target::Named(name, k, None) => name == what && of_kind == *k,
            Target::Named(..) => false,
        };
        if hit {
            eprintln!("zdm failpoint {n}: {what} #{of_kind}: aborting");
            std::process::abort();
        }
    }
}
