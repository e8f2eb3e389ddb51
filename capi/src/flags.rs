//! Flags as C passes them, checked and turned into policies and waits: the
//! native `VMSPACE_*` flags and vmem(9)'s `M_*` flags.

use core::ffi::c_int;
use core::time::Duration;

use vmspace::arena::Policy;
use vmspace::sync::Wait;

use crate::ctypes::*;

/// The native policy flags, each with its policy.
const POLICIES: [(c_int, Policy); 4] = [
    (VMSPACE_INSTANTFIT, Policy::InstantFit),
    (VMSPACE_BESTFIT, Policy::BestFit),
    (VMSPACE_FIRSTFIT, Policy::FirstFit),
    (VMSPACE_NEXTFIT, Policy::NextFit),
];

/// Every native policy flag.
const POLICY_MASK: c_int =
    VMSPACE_INSTANTFIT | VMSPACE_BESTFIT | VMSPACE_FIRSTFIT | VMSPACE_NEXTFIT;

/// The policy named by the bits of `flags` in `mask` (`None` for none),
/// or `Err` when it names more than one.
#[inline]
fn one_of(flags: c_int, table: &[(c_int, Policy)], mask: c_int) -> Result<Option<Policy>, ()> {
    let bits = flags & mask;
    if bits == 0 {
        return Ok(None);
    }
    table.iter().find(|(f, _)| *f == bits).map(|&(_, p)| Some(p)).ok_or(())
}

/// What the flags of one allocation ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AllocFlags {
    /// The policy named, if any (else the arena's).
    pub(crate) policy: Option<Policy>,
    /// Place at the top.
    pub(crate) top: bool,
    /// Wait for space.
    pub(crate) wait: Wait,
    /// `VMSPACE_EXACT`.
    pub(crate) exact: bool,
}

/// The native flags of an allocation: at most one policy, `VMSPACE_TOP`,
/// `VMSPACE_WAIT`, `VMSPACE_KILLABLE` (with `VMSPACE_WAIT`, an
/// [interruptible](Wait::Interruptible) wait; alone, nothing), and
/// `VMSPACE_EXACT` when `exact_ok`; anything else is `None` (`-EINVAL`).
#[inline]
pub(crate) fn native(flags: c_int, exact_ok: bool) -> Option<AllocFlags> {
    let mut known = POLICY_MASK | VMSPACE_TOP | VMSPACE_WAIT | VMSPACE_KILLABLE;
    if exact_ok {
        known |= VMSPACE_EXACT;
    }
    if flags & !known != 0 {
        return None;
    }
    Some(AllocFlags {
        policy: one_of(flags, &POLICIES, POLICY_MASK).ok()?,
        top: flags & VMSPACE_TOP != 0,
        wait: match (flags & VMSPACE_WAIT != 0, flags & VMSPACE_KILLABLE != 0) {
            (false, _) => Wait::No,
            (true, false) => Wait::Forever,
            (true, true) => Wait::Interruptible(None),
        },
        exact: flags & VMSPACE_EXACT != 0,
    })
}

/// The native flags of `vmspace_arena_alloc_timed`, waiting at most
/// `timeout` whatever `VMSPACE_WAIT` says: interruptibly with
/// `VMSPACE_KILLABLE`.
pub(crate) fn native_timed(flags: c_int, timeout: Duration) -> Option<AllocFlags> {
    let wait = if flags & VMSPACE_KILLABLE != 0 {
        Wait::Interruptible(Some(timeout))
    } else {
        Wait::Timeout(timeout)
    };
    Some(AllocFlags { wait, ..native(flags, false)? })
}

/// The default policy of a new arena from its creation flags (at most one
/// policy flag; none: instant fit), or `None` for anything else.
pub(crate) fn create_policy(flags: c_int) -> Option<Policy> {
    if flags & !POLICY_MASK != 0 {
        return None;
    }
    Some(one_of(flags, &POLICIES, POLICY_MASK).ok()?.unwrap_or_default())
}

/// vmem(9)'s strategies. `M_FIRSTFIT` is vmem's "fast fit", which is
/// instant fit (`M_INSTANTFIT` is the same flag).
const VMEM_POLICIES: [(c_int, Policy); 3] =
    [(M_FIRSTFIT, Policy::InstantFit), (M_BESTFIT, Policy::BestFit), (M_NEXTFIT, Policy::NextFit)];

/// vmem(9) flags: at most one strategy (none: the arena's, from
/// `vmem_create`'s flags), `M_NOWAIT` or `M_WAITOK` (not both; neither
/// waits, as `M_WAITOK`), and nothing else.
pub(crate) fn vmem(flags: c_int) -> Option<AllocFlags> {
    if flags & !(VMEM_FITMASK | M_NOWAIT | M_WAITOK) != 0 {
        return None;
    }
    if flags & M_NOWAIT != 0 && flags & M_WAITOK != 0 {
        return None;
    }
    Some(AllocFlags {
        policy: one_of(flags, &VMEM_POLICIES, VMEM_FITMASK).ok()?,
        top: false,
        wait: if flags & M_NOWAIT != 0 { Wait::No } else { Wait::Forever },
        exact: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn native_flags() {
        assert_eq!(native(0, false).unwrap().policy, None);
        let f = native(VMSPACE_BESTFIT | VMSPACE_TOP | VMSPACE_WAIT, false).unwrap();
        assert_eq!((f.policy, f.top, f.wait), (Some(Policy::BestFit), true, Wait::Forever));
        assert!(native(VMSPACE_BESTFIT | VMSPACE_NEXTFIT, false).is_none(), "two policies");
        assert!(native(VMSPACE_EXACT, false).is_none());
        assert!(native(VMSPACE_EXACT, true).unwrap().exact);
        assert!(native(0x1000, true).is_none(), "unknown bit");
        assert_eq!(create_policy(0), Some(Policy::InstantFit));
        assert_eq!(create_policy(VMSPACE_NEXTFIT), Some(Policy::NextFit));
        assert_eq!(create_policy(VMSPACE_WAIT), None);
    }

    #[test]
    fn vmem_flags() {
        assert_eq!(vmem(M_FIRSTFIT | M_NOWAIT).unwrap().policy, Some(Policy::InstantFit));
        assert_eq!(vmem(M_BESTFIT | M_WAITOK).unwrap().wait, Wait::Forever);
        assert_eq!(vmem(M_NEXTFIT).unwrap().wait, Wait::Forever);
        assert_eq!(
            native(VMSPACE_WAIT | VMSPACE_KILLABLE, false).unwrap().wait,
            Wait::Interruptible(None)
        );
        assert_eq!(native(VMSPACE_KILLABLE, false).unwrap().wait, Wait::No);
        assert!(vmem(M_WAITOK | VMSPACE_KILLABLE).is_none());
        let t = Duration::from_millis(5);
        assert_eq!(native_timed(VMSPACE_KILLABLE, t).unwrap().wait, Wait::Interruptible(Some(t)));
        assert_eq!(native_timed(VMSPACE_WAIT, t).unwrap().wait, Wait::Timeout(t));
        assert!(native_timed(VMSPACE_EXACT, t).is_none());
        assert_eq!(vmem(0).unwrap().policy, None);
        assert!(vmem(M_FIRSTFIT | M_BESTFIT).is_none());
        assert!(vmem(M_NOWAIT | M_WAITOK).is_none());
        assert!(vmem(0x1).is_none());
        assert_eq!(M_INSTANTFIT, M_FIRSTFIT);
    }
}
