//! The long help of the subcommands (`vmspace help replay`, `vmspace help
//! import-strace`): what they report and the formats they read.

/// The trace format, for `vmspace help replay`.
pub const REPLAY: &str = "\
Replay an arena operation trace on a fresh arena (on the mmap backend) and
report what a user of address space wants to know:

  peak      the most bytes live at once, the live allocations then, and
            their address extent (lowest start to highest end) with the
            ratio live/extent (1.0: packed without holes in one span;
            addresses between spans count in the extent);
  holes     free bytes inside the extent (its bytes inside spans - live;
            addresses between spans are no holes);
  fragmentation
            the arena's index 1 - largest free / all free, in per mille
            rounded up (0: the free space is one segment; near 1000:
            splintered);
  free sizes
            the free segments by power-of-two size class, and the largest;
  failures  every operation the arena refused, with its line and reason
            (the first --failures N listed, the rest counted).

Allocations are counted as the arena holds them: an ID a partial free
split into pieces counts once a piece.

A trace has one operation a line; # starts a comment; numbers are decimal
or 0x hex (_ allowed):

  quantum N                 the arena's quantum (before any operation,
                            a power of two; --quantum overrides it)
  add BASE SIZE             add the span [BASE, BASE+SIZE)
  alloc ID SIZE [POLICY]    allocate, naming the result ID
  xalloc ID SIZE [align=N] [phase=N] [nocross=N] [min=A] [max=A]
                 [exact=A] [policy=POLICY] [top]
  free ID                   free all that ID still holds
  free ID OFFSET SIZE       free [OFFSET, OFFSET+SIZE) of ID (munmap of part
                            of a mapping: what is left stays live); OFFSET
                            counts from where ID was allocated or last
                            resized
  resize ID SIZE            grow or shrink ID in place, or move it under
                            its allocation's constraints when it cannot
                            grow in place (mremap)

xalloc's window is [min, max): max is exclusive, as every vmspace call's
(vmem(9)'s vmem_xalloc alone takes an inclusive maxaddr). POLICY is instant
(the default), best, first or next; --policy overrides every one, --compare
runs the trace under each and prints them side by side.

An ID names one allocation at a time; once freed (by `free ID`, or by
part frees of all it held) it may be allocated again. A mistake about IDs
is the trace's, not the arena's, and stops the replay with its line: a
free or resize of an ID never allocated or freed already, an alloc of an
ID still live. An operation on an ID whose allocation the arena refused
is skipped (and counted), however many there are, until the ID is
allocated again; what the arena refuses (no space, a constraint no
address meets, a part free of bytes the ID does not hold) is listed
under failures: the replay goes on.";

/// What `vmspace help import-strace` prints.
pub const IMPORT_STRACE: &str = "\
Convert the output of

    strace -f -e trace=mmap,munmap,mremap -o app.strace PROGRAM ARGS

into an arena operation trace for `vmspace replay`: the trace has quantum
PAGE (--page, 4096), one span for the whole 47-bit user address space, and
per call:

  mmap = A              alloc ID LEN (a new ID; lengths rounded up to pages)
  munmap(A, LEN)        free ID, or free ID OFFSET SIZE for the pages of a
                        mapping left with nothing mapped (one line per
                        mapping the range touches, and per run of its
                        pages still mapped: a hole an earlier munmap left
                        splits the line in two)
  mremap(A, OLD, NEW)   resize ID NEW (the replay grows in place or moves);
                        with MREMAP_DONTUNMAP alloc ID NEW (a new ID: the
                        old mapping stays mapped)

With --page above the program's 4 KiB pages the trace models the program
on a system with larger pages: each mapping is its own allocation rounded
up to whole pages, and a partial munmap frees the large pages it leaves
with nothing mapped.

The replay places every mapping itself, so it answers how this program's
mappings would pack in a vmspace arena, not where the kernel put them.
MAP_FIXED mappings inside live ones replace pages without changing the
address space (a comment says so); elsewhere they become new allocations.
Failed calls, unmaps of ranges mapped before tracing began, maps, remaps
and unmaps of 0 bytes and partial unmaps that leave every page they touch
with something mapped (at --page above 4 KiB) become comments; a file in
which no call became an operation is still converted, with a warning. Each line's comment gives
the strace line it comes from.
Accepts strace's pid prefixes (-f), timestamps (-t, -tt, -ttt, -r), flags
by name or as numbers (-X raw, -X verbose), and
<unfinished ...> / <... resumed> pairs (the call's operations name the
line it resumes on, a comment its first line; a call never resumed, or
resumed with no start in the trace, becomes a comment). Every pid's calls go into one
address space, right for threads; for several processes a comment at the
top says so (what a process maps adds up with the others', and stays
live after it exits): trace one process for a faithful replay.";
