//! Lists the device fills into a caller's buffer (`ARENA_WALK`,
//! `VM_RUNS`): the count it answers is checked before it sizes anything.

use nix::errno::Errno;

use super::KdevError;

/// Times a list is asked for again because it grew past the buffer.
const TRIES: usize = 8;

/// Read a list of at most `most` entries: `fill(buf)` runs the command with
/// `buf`'s room and returns the count the device answered (all the entries
/// there are, of which it wrote those that fit). A buffer too small is
/// made as large as the count (with `slack` more, at most `most`) and the
/// command run again, up to [`TRIES`] times. A count above `most`, or one
/// that outgrows every buffer, is the device breaking its protocol:
/// `EPROTO`, not an allocation sized by whatever it said; a buffer that
/// cannot be had is `ENOMEM`, not an abort.
pub(super) fn read_list<T: Copy>(
    command: &'static str,
    zero: T,
    first: usize,
    slack: usize,
    most: usize,
    mut fill: impl FnMut(&mut [T]) -> Result<u64, KdevError>,
) -> Result<Vec<T>, KdevError> {
    let error = |errno| KdevError { command, errno, record: None };
    let room = |n: usize| {
        let mut buf = Vec::new();
        buf.try_reserve_exact(n).map_err(|_| error(Errno::ENOMEM))?;
        buf.resize(n, zero);
        Ok(buf)
    };
    let mut buf = room(first.clamp(1, most.max(1)))?;
    for _ in 0..TRIES {
        let n = fill(&mut buf)?;
        let n = usize::try_from(n).ok().filter(|&n| n <= most).ok_or(error(Errno::EPROTO))?;
        if n <= buf.len() {
            buf.truncate(n);
            return Ok(buf);
        }
        buf = room(n.saturating_add(slack).min(most))?;
    }
    Err(error(Errno::EPROTO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_past_the_bound_or_growing_for_ever_are_refused() {
        let eproto =
            |r: Result<Vec<u8>, KdevError>| matches!(r, Err(e) if e.errno == Errno::EPROTO);
        assert!(eproto(read_list("T", 0u8, 4, 4, 100, |_| Ok(u64::MAX))));
        assert!(eproto(read_list("T", 0u8, 4, 4, 100, |_| Ok(101))));
        let mut n = 0;
        assert!(eproto(read_list("T", 0u8, 1, 0, 100, |b| {
            n += 1;
            Ok(b.len() as u64 + 1)
        })));
        assert_eq!(n, TRIES);
        // An honest list: one retry, then exactly the count.
        let got = read_list("T", 0u8, 4, 4, 100, |b| {
            b.iter_mut().for_each(|x| *x = 7);
            Ok(100)
        });
        assert_eq!(got.unwrap(), vec![7u8; 100]);
        assert_eq!(read_list("T", 0u8, 4, 4, 100, |_| Ok(0)).unwrap(), Vec::<u8>::new());
    }
}
