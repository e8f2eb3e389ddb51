//! Round 55 (outside reviewer): what the fault-injection tests share: a
//! seccomp filter that makes chosen system calls (matched by number and
//! arguments) fail with a chosen errno, /proc/self/maps snapshots, and a
//! macro running each test in a re-executed child (seccomp filters and
//! rlimits are for good: they must not touch other tests).

#![allow(dead_code)] // each test file uses part of it

use vmspace_shim::{Addr, Range, Size};

/// A condition on argument `i` of the call (`Eq32`/`Set` look at the low
/// 32 bits only, as for an `int` argument).
#[derive(Clone, Copy)]
pub enum Cond {
    Eq(usize, u64),
    Eq32(usize, u32),
    Lt(usize, u32),
    Ge(usize, u32),
    Set(usize, u32),
}

/// Fail calls `nr` whose arguments meet every condition with `errno`.
pub struct Rule {
    pub nr: libc::c_long,
    pub conds: Vec<Cond>,
    pub errno: i32,
}

pub fn rule(nr: libc::c_long, conds: &[Cond], errno: i32) -> Rule {
    Rule { nr, conds: conds.to_vec(), errno }
}

#[derive(Clone, Copy)]
enum T {
    Next,
    Skip,
    Match,
}

enum Ins {
    Ld(u32),
    Jeq(u32, T, T),
    Jge(u32, T, T),
    Jset(u32, T, T),
    Ret(u32),
}

/// Install one more seccomp filter (filters stack: the first `Rule` of any
/// filter that matches fails the call).
pub fn fail_calls(rules: &[Rule]) {
    let mut prog: Vec<libc::sock_filter> = Vec::new();
    let f = |code, jt, jf, k| libc::sock_filter { code, jt, jf, k };
    for r in rules {
        let lo = |i: usize| 16 + 8 * i as u32;
        let hi = |i: usize| 20 + 8 * i as u32;
        let mut ins = vec![Ins::Ld(0), Ins::Jeq(r.nr as u32, T::Next, T::Skip)];
        for c in &r.conds {
            match *c {
                Cond::Eq(i, v) => ins.extend([
                    Ins::Ld(lo(i)),
                    Ins::Jeq(v as u32, T::Next, T::Skip),
                    Ins::Ld(hi(i)),
                    Ins::Jeq((v >> 32) as u32, T::Next, T::Skip),
                ]),
                Cond::Eq32(i, v) => ins.extend([Ins::Ld(lo(i)), Ins::Jeq(v, T::Next, T::Skip)]),
                Cond::Lt(i, v) => ins.extend([
                    Ins::Ld(hi(i)),
                    Ins::Jeq(0, T::Next, T::Skip),
                    Ins::Ld(lo(i)),
                    Ins::Jge(v, T::Skip, T::Next),
                ]),
                Cond::Ge(i, v) => ins.extend([
                    Ins::Ld(hi(i)),
                    Ins::Jeq(0, T::Next, T::Match),
                    Ins::Ld(lo(i)),
                    Ins::Jge(v, T::Next, T::Skip),
                ]),
                Cond::Set(i, m) => ins.extend([Ins::Ld(lo(i)), Ins::Jset(m, T::Next, T::Skip)]),
            }
        }
        let ret = ins.len();
        ins.push(Ins::Ret(0x0005_0000 | (r.errno as u32 & 0xffff)));
        let off = |at: usize, t: T| -> u8 {
            let to = match t {
                T::Next => at + 1,
                T::Skip => ret + 1,
                T::Match => ret,
            };
            u8::try_from(to - at - 1).unwrap()
        };
        for (at, i) in ins.iter().enumerate() {
            prog.push(match *i {
                Ins::Ld(k) => f(0x20, 0, 0, k),
                Ins::Jeq(k, t, e) => f(0x15, off(at, t), off(at, e), k),
                Ins::Jge(k, t, e) => f(0x35, off(at, t), off(at, e), k),
                Ins::Jset(k, t, e) => f(0x45, off(at, t), off(at, e), k),
                Ins::Ret(k) => f(0x06, 0, 0, k),
            });
        }
    }
    prog.push(f(0x06, 0, 0, 0x7fff_0000));
    let fprog = libc::sock_fprog { len: prog.len() as u16, filter: prog.as_mut_ptr() };
    // SAFETY: plain prctl calls with a valid filter program that outlives them.
    unsafe {
        assert_eq!(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
        assert_eq!(
            libc::prctl(libc::PR_SET_SECCOMP, libc::SECCOMP_MODE_FILTER, &fprog as *const _),
            0,
            "seccomp: {}",
            std::io::Error::last_os_error()
        );
    }
}

/// The permissions of every VMA over `x`.
pub fn perms(x: Range) -> Vec<String> {
    vmspace_user::procfs::vmas_in(x).unwrap().into_iter().map(|v| v.perms).collect()
}

/// Whether every page of `x` is mapped with permissions `p` (`rw-p`...).
pub fn all(x: Range, p: &str) -> bool {
    let v = vmspace_user::procfs::vmas_in(x).unwrap();
    let mut at = x.base().0;
    for vma in &v {
        if vma.range.base().0 > at || vma.perms != p {
            return false;
        }
        at = vma.range.limit().0;
    }
    at >= x.limit().0
}

/// Whether nothing at all is mapped over `x`.
pub fn hole(x: Range) -> bool {
    vmspace_user::procfs::vmas_in(x).unwrap().is_empty()
}

/// The anonymous `---p` VMAs of the process, `(start, end)`.
pub fn inaccessible() -> Vec<(usize, usize)> {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    maps.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() == 5 && f[1] == "---p").then(|| {
                let (a, b) = f[0].split_once('-').unwrap();
                (usize::from_str_radix(a, 16).unwrap(), usize::from_str_radix(b, 16).unwrap())
            })
        })
        .collect()
}

/// The inaccessible anonymous bytes in `after` that `before` did not have
/// (a leaked reservation; malloc's heaps only ever shrink theirs).
pub fn new_inaccessible(before: &[(usize, usize)], after: &[(usize, usize)]) -> usize {
    let mut new = 0;
    for &(a, b) in after {
        let mut covered = 0;
        for &(c, d) in before {
            let (lo, hi) = (a.max(c), b.min(d));
            if lo < hi {
                covered += hi - lo;
            }
        }
        new += (b - a) - covered;
    }
    new
}

pub fn page() -> usize {
    // SAFETY: no preconditions.
    unsafe { libc::sysconf(libc::_SC_PAGESIZE) as usize }
}

/// Pages `[from, to)` of `x`.
pub fn pages(x: Range, from: usize, to: usize) -> Range {
    let p = page();
    Range::from_size(Addr(x.base().0 + from * p), Size((to - from) * p)).unwrap()
}

/// Fill `r` (read-write) with `v`.
pub fn fill(r: Range, v: u8) {
    // SAFETY: the caller's range is mapped read-write.
    unsafe { r.base().as_ptr::<u8>().write_bytes(v, r.size().0) }
}

/// Whether every byte of `r` (readable) is `v`.
pub fn holds(r: Range, v: u8) -> bool {
    // SAFETY: the caller's range is mapped readable.
    let s = unsafe { std::slice::from_raw_parts(r.base().as_ptr::<u8>(), r.size().0) };
    s.iter().all(|&b| b == v)
}

/// A test that runs its body in a re-executed child of its own.
#[macro_export]
macro_rules! child_test {
    ($(#[$m:meta])* $name:ident, $body:expr) => {
        $(#[$m])*
        #[test]
        fn $name() {
            let _serial = child_reexec::serial();
            let var = concat!("R55_", stringify!($name));
            if std::env::var_os(var).is_none() {
                return child_reexec::in_child(stringify!($name), var, "r55:");
            }
            ($body)();
        }
    };
}
