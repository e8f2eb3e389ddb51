//! Which CPUs the calling thread may run on, and holding it on one: what
//! sizing or exercising per-CPU caches needs ([`RseqPin`](crate::RseqPin)
//! and [`SchedPin`](crate::SchedPin) index their slots by CPU number).

use std::io;

/// The CPU numbers the calling thread may run on (its affinity mask, as
/// `sched_getaffinity(2)` reports it), in increasing order. These are CPU
/// *numbers*: on a machine whose cpuset leaves out CPU 0, or under
/// `taskset -c 3`, the list does not start at 0, and its length is not
/// the highest number plus one.
///
/// # Errors
///
/// The error `sched_getaffinity` returns.
pub fn allowed_cpus() -> io::Result<Vec<usize>> {
    // SAFETY: an all-zero cpu_set_t is the empty set (plain bits).
    let mut set: libc::cpu_set_t = unsafe { core::mem::zeroed() };
    // SAFETY: pid 0 is the calling thread; the kernel writes at most the
    // size given into the set, which we own.
    if unsafe { libc::sched_getaffinity(0, core::mem::size_of_val(&set), &mut set) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: CPU_ISSET reads the set we own at an index below CPU_SETSIZE.
    Ok((0..cpu_setsize()).filter(|&c| unsafe { libc::CPU_ISSET(c, &set) }).collect())
}

/// Let the calling thread run only on CPU number `cpu` (from then on; the
/// kernel moves it there before this returns, unless it is there already).
///
/// # Errors
///
/// `InvalidInput` if `cpu` is beyond what a `cpu_set_t` holds, else the
/// error `sched_setaffinity(2)` returns (`EINVAL` for a CPU that is not
/// online or not in the thread's cpuset). A CPU outside the thread's
/// current affinity mask is not refused: the mask is what this replaces.
pub fn run_only_on(cpu: usize) -> io::Result<()> {
    if cpu >= cpu_setsize() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("CPU {cpu} is beyond a cpu_set_t ({} CPUs)", cpu_setsize()),
        ));
    }
    // SAFETY: an all-zero cpu_set_t is the empty set (plain bits).
    let mut set: libc::cpu_set_t = unsafe { core::mem::zeroed() };
    // SAFETY: `cpu` is below CPU_SETSIZE (checked above); the set is ours.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: pid 0 is the calling thread; the kernel only reads the set.
    if unsafe { libc::sched_setaffinity(0, core::mem::size_of_val(&set), &set) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// How many CPU numbers a `cpu_set_t` holds.
fn cpu_setsize() -> usize {
    usize::try_from(libc::CPU_SETSIZE).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_thread_runs_where_it_is_held() {
        let cpus = allowed_cpus().unwrap();
        assert!(!cpus.is_empty());
        assert!(cpus.windows(2).all(|w| w[0] < w[1]), "{cpus:?} not in order");
        let last = *cpus.last().unwrap();
        std::thread::spawn(move || {
            run_only_on(last).unwrap();
            assert_eq!(allowed_cpus().unwrap(), [last]);
            // SAFETY: sched_getcpu has no preconditions.
            let here = unsafe { libc::sched_getcpu() };
            assert_eq!(usize::try_from(here).ok(), Some(last));
        })
        .join()
        .unwrap();
        // The spawned thread's mask was its own.
        assert_eq!(allowed_cpus().unwrap(), cpus);
    }

    #[test]
    fn a_cpu_past_the_set_is_refused() {
        let e = run_only_on(cpu_setsize()).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        assert_eq!(run_only_on(usize::MAX).unwrap_err().kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn a_cpu_the_system_does_not_have_is_refused() {
        // A number past every possible CPU, which no cpuset holds.
        let absent = crate::possible_cpus();
        if absent >= cpu_setsize() {
            return;
        }
        let cpus = allowed_cpus().unwrap();
        std::thread::spawn(move || {
            let e = run_only_on(absent).unwrap_err();
            assert_eq!(e.raw_os_error(), Some(libc::EINVAL), "{e}");
            assert_eq!(allowed_cpus().unwrap(), cpus, "a refused mask changed the thread's");
        })
        .join()
        .unwrap();
    }
}
