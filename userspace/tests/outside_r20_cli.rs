//! Round 20, an outside reviewer's tests of today's `vmspace
//! import-strace` rewrite and the replay engine's fixes, written from
//! `vmspace help import-strace` and `vmspace help replay`.
//!
//! Each test is marked `// DEFECT:` (failed when written, because of a
//! defect; fixed in the commit that added this file, so it now guards the
//! fix) or `// HOLDS:` (passed: a claim checked and found true).

use std::collections::BTreeMap;
use std::process::{Command, Stdio};

mod cli_run;

use cli_run::ok;

/// `import-strace --page page` of `strace`, from standard input.
fn import(strace: &str, page: usize) -> String {
    ok(&["import-strace", "--page", &page.to_string(), "-"], strace)
}

/// `replay --check --json` of `trace`, parsed.
fn replay(trace: &str) -> serde_json::Value {
    let out = ok(&["replay", "--check", "--json", "-"], trace);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// The operation lines of a trace (comments and blank lines dropped).
fn ops(trace: &str) -> Vec<String> {
    trace
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

// DEFECT: `--page` below the program's 4 KiB pages makes the importer
// follow mappings at the smaller page (`unit: page.min(PROGRAM_PAGE)`),
// but the kernel rounded the program's mappings to 4 KiB whatever
// `--page` says. ld.so maps a library with `mmap(NULL, 137216, ...)`
// (the kernel maps 0x22000 bytes) and then `MAP_FIXED` segments inside
// it, the last one at +0x20000 for 0x2000 bytes: inside the live
// mapping, so by `help import-strace` a comment ("MAP_FIXED mappings
// inside live ones replace pages without changing the address space").
// With `--page 256` it became an invented partial free
// (`free m0 0x20000 0x1800`) and a new allocation: the kind of invented
// partial frees today's changelog says it fixed for padded munmaps.
// (Lines from a real `strace -f` of gcc.)
#[test]
fn small_pages_keep_map_fixed_inside_a_mapping_a_comment() {
    let strace = "\
12651 mmap(NULL, 137216, PROT_READ, MAP_PRIVATE|MAP_DENYWRITE, 3, 0) = 0x7f221930b000
12651 mmap(0x7f2219311000, 90112, PROT_READ|PROT_EXEC, MAP_PRIVATE|MAP_FIXED|MAP_DENYWRITE, 3, 0x6000) = 0x7f2219311000
12651 mmap(0x7f2219327000, 16384, PROT_READ, MAP_PRIVATE|MAP_FIXED|MAP_DENYWRITE, 3, 0x1c000) = 0x7f2219327000
12651 mmap(0x7f221932b000, 8192, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_FIXED|MAP_DENYWRITE, 3, 0x1f000) = 0x7f221932b000
12651 munmap(0x7f221930b000, 137216) = 0
";
    // At 4 KiB: one allocation, three comments, one free.
    let at_4k = ops(&import(strace, 4096));
    assert_eq!(at_4k[2..], ["alloc m0 0x22000", "free m0"], "{at_4k:?}");
    for page in [256, 1024, 2048] {
        let t = import(strace, page);
        let got = ops(&t);
        let allocs = got.iter().filter(|l| l.starts_with("alloc")).count();
        let partial = got.iter().filter(|l| l.starts_with("free") && l.split(' ').count() == 4);
        assert_eq!(
            (allocs, partial.count()),
            (1, 0),
            "--page {page}: a MAP_FIXED inside the live mapping became new \
             allocations or partial frees:\n{t}"
        );
    }
}

// DEFECT: strace's default output (to standard error, `strace -f PROG`)
// prefixes only the other processes' lines with `[pid N]`; the first
// process's lines have no prefix. The importer counts only prefixed pids,
// so a trace of two processes (`sh -c '/bin/true & wait'`, recorded here
// from a real strace) gets no "pids merged into one address space"
// comment, which today's changelog promises "with several pids".
#[test]
fn the_unprefixed_first_process_counts_as_a_pid() {
    let strace = "\
mmap(NULL, 8192, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7f423bc0d000
munmap(0x7f423bc0d000, 8192)           = 0
strace: Process 14221 attached
[pid 14221] mmap(NULL, 8192, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7f56163b9000
[pid 14221] munmap(0x7f56163b9000, 8192) = 0
[pid 14221] +++ exited with 0 +++
--- SIGCHLD {si_signo=SIGCHLD, si_code=CLD_EXITED, si_pid=14221, si_uid=0, si_status=0, si_utime=0, si_stime=0} ---
+++ exited with 0 +++
";
    let t = import(strace, 4096);
    assert!(t.contains("2 pids merged into one address space"), "{t}");
}

// HOLDS: the same two processes with `-o FILE` (every line prefixed)
// do get the comment.
#[test]
fn prefixed_pids_get_the_merged_comment() {
    let strace = "\
14220 mmap(NULL, 8192, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7f423bc0d000
14221 mmap(NULL, 8192, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7f56163b9000
";
    assert!(import(strace, 4096).contains("2 pids merged into one address space"));
}

/// A tiny simulated kernel with 4 KiB pages: which mapping (an ID of
/// ours) holds each page of a 64 MiB window, and strace lines for every
/// call made on it.
struct Kernel {
    pages: Vec<Option<u32>>,
    next: u32,
    rng: u64,
    lines: String,
}

const KBASE: usize = 0x7f00_0000_0000;
const KPAGES: usize = 16384;
const KPAGE: usize = 4096;

impl Kernel {
    fn new(seed: u64) -> Self {
        Kernel { pages: vec![None; KPAGES], next: 0, rng: seed | 1, lines: String::new() }
    }

    fn rand(&mut self, n: usize) -> usize {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        (self.rng % n as u64) as usize
    }

    /// A length of `pages` pages, less some bytes (strace prints what the
    /// program asked, the kernel rounds it up).
    fn len_of(&mut self, pages: usize) -> usize {
        pages * KPAGE - self.rand(KPAGE)
    }

    fn free_run(&self, from: usize, n: usize) -> Option<usize> {
        (from..KPAGES.saturating_sub(n))
            .chain(0..from.min(KPAGES.saturating_sub(n)))
            .find(|&p| self.pages[p..p + n].iter().all(Option::is_none))
    }

    fn pid(&mut self) -> &'static str {
        ["500  ", "501  ", "[pid   502] "][self.rand(3)]
    }

    fn line(&mut self, call: String, padded: bool) {
        let pid = self.pid();
        let pad = if padded { " ".repeat(1 + self.rand(12)) } else { " ".to_string() };
        let (head, result) = call.split_once(" = ").expect("call = result");
        self.lines.push_str(&format!("{pid}{head}{pad}= {result}\n"));
    }

    fn mmap(&mut self) {
        let most = if self.rand(4) == 0 { 200 } else { 24 };
        let n = 1 + self.rand(most);
        let fixed = self.rand(6) == 0;
        let len = self.len_of(n);
        let p = if fixed {
            Some(self.rand(KPAGES - n))
        } else {
            let from = self.rand(KPAGES);
            self.free_run(from, n)
        };
        let Some(p) = p else { return };
        let id = self.next;
        self.next += 1;
        for q in &mut self.pages[p..p + n] {
            *q = Some(id);
        }
        let a = KBASE + p * KPAGE;
        let (addr, flags) = if fixed {
            (format!("{a:#x}"), "MAP_PRIVATE|MAP_FIXED|MAP_ANONYMOUS")
        } else {
            ("NULL".to_string(), "MAP_PRIVATE|MAP_ANONYMOUS")
        };
        self.line(
            format!("mmap({addr}, {len}, PROT_READ|PROT_WRITE, {flags}, -1, 0) = {a:#x}"),
            false,
        );
    }

    fn munmap(&mut self) {
        let p = self.rand(KPAGES - 64);
        let most = if self.rand(3) == 0 { 64 } else { 6 };
        let n = 1 + self.rand(most);
        for q in &mut self.pages[p..p + n] {
            *q = None;
        }
        let len = self.len_of(n);
        self.line(format!("munmap({:#x}, {len}) = 0", KBASE + p * KPAGE), true);
    }

    /// mremap of (part of) one mapping: in place or moving.
    fn mremap(&mut self) {
        let start = self.rand(KPAGES);
        let Some(p) = (start..KPAGES).find(|&p| self.pages[p].is_some()) else { return };
        let id = self.pages[p];
        let mut q = p;
        while q < KPAGES && self.pages[q] == id {
            q += 1;
        }
        // Sometimes only a part of the run.
        let (p, q) = if self.rand(4) == 0 && q - p > 2 { (p + 1, q - 1) } else { (p, q) };
        let old = q - p;
        let new = 1 + self.rand(2 * old + 8);
        let new_id = Some(self.next);
        self.next += 1;
        let in_place = new <= old
            || (q + (new - old) <= KPAGES && self.pages[q..p + new].iter().all(Option::is_none));
        let dest = if in_place {
            Some(p)
        } else {
            let from = self.rand(KPAGES);
            self.free_run(from, new)
        };
        let Some(d) = dest else { return };
        for x in &mut self.pages[p..q] {
            *x = None;
        }
        for x in &mut self.pages[d..d + new] {
            *x = new_id;
        }
        let (old_len, new_len) = (self.len_of(old), self.len_of(new));
        self.line(
            format!(
                "mremap({:#x}, {old_len}, {new_len}, MREMAP_MAYMOVE) = {:#x}",
                KBASE + p * KPAGE,
                KBASE + d * KPAGE
            ),
            false,
        );
    }

    fn run(seed: u64, calls: usize) -> Kernel {
        let mut k = Kernel::new(seed);
        for _ in 0..calls {
            match k.rand(10) {
                0..=4 => k.mmap(),
                5..=7 => k.munmap(),
                _ => k.mremap(),
            }
        }
        k
    }

    fn mapped_bytes(&self) -> usize {
        self.pages.iter().filter(|p| p.is_some()).count() * KPAGE
    }
}

/// `outcomes.failed` and `end.live_bytes` of a replay report.
fn failed_and_live(report: &serde_json::Value) -> (u64, u64) {
    (
        report["outcomes"]["failed"].as_u64().expect("failed"),
        report["end"]["live_bytes"].as_u64().expect("live_bytes"),
    )
}

// HOLDS: strace text of a simulated kernel (4 KiB pages; anonymous mmaps,
// MAP_FIXED anywhere, munmaps of any range with strace's padding,
// mremaps of whole or part mappings growing in place, shrinking or
// moving; three pids, two prefix styles) imports and replays with
// `--check` without a failure for every `--page` tried; at 4 KiB the end
// of the replay holds exactly the bytes the kernel has mapped, and with
// larger pages at least that many (smaller pages: no failure).
#[test]
fn simulated_programs_import_and_replay_cleanly() {
    let (mut resizes, mut partial, mut fixed) = (0, 0, 0);
    for seed in 1..=8u64 {
        let k = Kernel::run(seed * 0x9e37_79b9, 400);
        let t = import(&k.lines, KPAGE);
        resizes += ops(&t).iter().filter(|l| l.starts_with("resize")).count();
        partial += ops(&t).iter().filter(|l| l.split(' ').count() == 4).count();
        fixed += t.matches("MAP_FIXED inside live").count();
        for page in [256usize, 1024, 4096, 16384, 65536, 1 << 21] {
            let t = import(&k.lines, page);
            let report = replay(&t);
            let (failed, live) = failed_and_live(&report);
            assert_eq!(failed, 0, "seed {seed} page {page}: {report}\n{t}\n{}", k.lines);
            if page == KPAGE {
                assert_eq!(live as usize, k.mapped_bytes(), "seed {seed}:\n{t}\n{}", k.lines);
            } else if page > KPAGE {
                assert!(live as usize >= k.mapped_bytes(), "seed {seed} page {page}");
            }
        }
    }
    assert!(resizes > 20 && partial > 20 && fixed > 0, "{resizes} {partial} {fixed}");
}

// HOLDS: a partial unmap with `--page` 64 KiB frees exactly the large
// pages it empties, once each, and the last unmap frees the whole.
#[test]
fn large_pages_free_what_they_empty_once() {
    let strace = "\
1 mmap(NULL, 196608, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7f0000001000
1 munmap(0x7f0000010000, 8192)     = 0
1 munmap(0x7f0000001000, 61440)    = 0
1 munmap(0x7f0000012000, 61440)    = 0
1 munmap(0x7f0000021000, 0x10000)  = 0
";
    let t = import(strace, 65536);
    let got = ops(&t);
    assert_eq!(
        got[2..],
        ["alloc m0 0x30000", "free m0 0x0 0x10000", "free m0 0x10000 0x10000", "free m0"],
        "{t}"
    );
    let (failed, live) = failed_and_live(&replay(&t));
    assert_eq!((failed, live), (0, 0));
}

// HOLDS: after a resize in place of an allocation whose head was freed,
// offsets count from the resized piece; a moved `xalloc` keeps its `min`;
// holes count only addresses inside spans.
#[test]
fn replay_resets_bases_keeps_constraints_and_counts_holes_in_spans() {
    let trace = "\
quantum 4096
add 0x10000 0x100000
alloc a 0x4000 first
free a 0 0x1000
resize a 0x5000
free a 0x4000 0x1000
free a 0 0x1000
";
    let r = replay(trace);
    assert_eq!(r["outcomes"]["failed"], 0, "{r}");
    // Left: [0x12000, 0x15000) of the resized [0x11000, 0x16000).
    assert_eq!(r["end"]["extent_start"], 0x12000, "{r}");
    assert_eq!(r["end"]["extent_end"], 0x15000, "{r}");

    let trace = "\
quantum 4096
add 0x10000 0x100000
xalloc a 0x1000 min=0x50000 policy=first
xalloc b 0x1000 exact=0x51000
resize a 0x3000
";
    let r = replay(trace);
    assert_eq!(r["outcomes"]["moved"], 1, "{r}");
    // Moved under its own `min`, not to the free space below it.
    assert!(r["end"]["extent_start"].as_u64().unwrap() >= 0x50000, "{r}");

    let trace = "\
quantum 4096
add 0x10000 0x4000
add 0x40000 0x4000
alloc a 0x1000 first
alloc b 0x4000 first
alloc c 0x1000 first
";
    let r = replay(trace);
    // Extent [0x10000, 0x44000): inside spans 0x8000, live 0x6000.
    assert_eq!(r["end"]["holes_bytes"], 0x2000, "{r}");
}

// HOLDS: real programs traced with `strace -f` (when strace is
// installed) import and replay with `--check` without a failure for
// several `--page` values.
#[test]
fn real_strace_output_replays_cleanly() {
    let dir = std::env::temp_dir().join(format!("outside_r20_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("x.strace");
    let programs: [&[&str]; 2] = [
        &[
            "perl",
            "-e",
            "my $s=''; $s .= 'x' x 1000 for 1..3000; my @a = map { 'y' x ($_ * 5000) } 1..60;",
        ],
        &["sh", "-c", "/bin/true & wait"],
    ];
    let mut ran = 0;
    for prog in programs {
        let status = Command::new("strace")
            .args(["-f", "-e", "trace=mmap,munmap,mremap", "-o"])
            .arg(&out)
            .args(prog)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let Ok(status) = status else { continue };
        if !status.success() {
            continue;
        }
        ran += 1;
        let text = std::fs::read_to_string(&out).unwrap();
        for page in [1024usize, 4096, 65536, 1 << 21] {
            let t = import(&text, page);
            let (failed, _) = failed_and_live(&replay(&t));
            assert_eq!(failed, 0, "{prog:?} --page {page}:\n{t}");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    eprintln!("{ran} programs traced");
}

// HOLDS: the importer's model never frees an offset outside what it
// allocated: every `free ID OFFSET SIZE` lies inside the allocation's
// last `alloc`/`resize` size (checked on the simulated kernel's traces).
#[test]
fn partial_frees_stay_inside_their_allocation() {
    for seed in 10..=14u64 {
        let k = Kernel::run(seed * 0x51_7cc1, 260);
        for page in [4096usize, 65536] {
            let t = import(&k.lines, page);
            let mut size: BTreeMap<String, usize> = BTreeMap::new();
            let num = |s: &str| usize::from_str_radix(s.trim_start_matches("0x"), 16).unwrap();
            for l in ops(&t) {
                let w: Vec<&str> = l.split_whitespace().collect();
                match w[..] {
                    ["alloc", id, n] | ["resize", id, n] => {
                        size.insert(id.to_string(), num(n));
                    }
                    ["free", id] => {
                        assert!(size.remove(id).is_some(), "{l}: double free\n{t}");
                    }
                    ["free", id, off, n] => {
                        let s = size[id];
                        let (off, n) = (num(off), num(n));
                        assert!(off % page == 0 && n % page == 0 && off + n <= s, "{l}\n{t}");
                    }
                    _ => {}
                }
            }
        }
    }
}
