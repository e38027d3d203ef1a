//! The `/proc/net/arp` text format: the fallback source (`[presence] arp_table`), and how
//! tests and systems without netlink feed presence.
//!
//! ```text
//! IP address       HW type     Flags       HW address            Mask     Device
//! 10.99.1.2        0x1         0x2         f2:c6:75:56:2f:91     *        eth0
//! ```
//!
//! The flags are the kernel's `ATF_*` bits: `0x2` (`ATF_COM`) marks a complete entry, one
//! whose address was learnt; `0x0` is an incomplete one still waiting for an answer. `0x4`
//! (`ATF_PERM`) marks a static entry, which says nothing about whether the device is there.

use std::net::IpAddr;

use thiserror::Error;

use super::{Evidence, Observed};
use crate::state::Mac;

/// `ATF_COM`: the entry is complete.
const ATF_COM: u32 = 0x2;
/// `ATF_PERM`: the entry was configured, not learnt.
const ATF_PERM: u32 = 0x4;

/// A line of the table that does not have the format, with its 1-based line number.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("line {line}: {message}")]
pub struct ArpError {
    pub line: usize,
    pub message: String,
}

/// The devices a table in `/proc/net/arp` format shows as present: complete, learnt entries
/// with a MAC. The header line is optional; an empty table is fine. A malformed line is an
/// error naming it, since a file that is not in this format is almost certainly the wrong
/// file.
pub fn parse(text: &str) -> Result<Vec<Observed>, ArpError> {
    let mut observed = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let fail = |message: String| ArpError {
            line: index + 1,
            message,
        };
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.is_empty() || (index == 0 && line.starts_with("IP address")) {
            continue;
        }
        let [ip, _hw_type, flags, mac, ..] = fields[..] else {
            return Err(fail(format!(
                "expected IP address, HW type, flags and HW address, found {line:?}"
            )));
        };
        let ip: IpAddr = ip
            .parse()
            .map_err(|_| fail(format!("{ip:?} is not an IP address")))?;
        let flags = u32::from_str_radix(flags.trim_start_matches("0x"), 16)
            .map_err(|_| fail(format!("{flags:?} is not a hexadecimal flags field")))?;
        let mac: Mac = mac
            .parse()
            .map_err(|_| fail(format!("{mac:?} is not a MAC address")))?;
        if flags & ATF_COM == 0 || flags & ATF_PERM != 0 {
            continue;
        }
        observed.push(Observed {
            mac,
            ip,
            // The file has no ages: a complete entry is taken as seen at the scan.
            evidence: Evidence::Now,
        });
    }
    Ok(observed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(text: &str) -> Vec<String> {
        parse(text)
            .unwrap()
            .iter()
            .map(|observed| format!("{} {}", observed.ip, observed.mac))
            .collect()
    }

    /// `/proc/net/arp` of the same namespace as the netlink sample, at the same moment:
    /// FAILED and INCOMPLETE entries are `0x0` with a zero MAC, the permanent one `0x6`.
    #[test]
    fn a_real_table_keeps_complete_learnt_entries() {
        assert_eq!(
            seen(include_str!("testdata/arp.txt")),
            [
                "10.99.1.2 f2:c6:75:56:2f:91",
                "10.99.1.51 da:a1:19:00:00:01"
            ]
        );
    }

    #[test]
    fn a_header_alone_or_nothing_is_an_empty_table() {
        assert!(
            seen(
                "IP address       HW type     Flags       HW address            Mask     Device\n"
            )
            .is_empty()
        );
        assert!(seen("").is_empty());
        assert_eq!(
            seen("192.0.2.1 0x1 0x2 02:fc:00:00:00:05 * eth0"),
            ["192.0.2.1 02:fc:00:00:00:05"]
        );
    }

    #[test]
    fn a_malformed_line_is_named() {
        let check = |text: &str, line: usize, expected: &str| {
            let error = parse(text).expect_err(text);
            assert_eq!(error.line, line, "{error}");
            assert!(error.message.contains(expected), "{error} lacks {expected}");
        };
        check("IP address HW\n10.0.0.1 0x1\n", 2, "expected IP address");
        check(
            "10.0.0.300 0x1 0x2 00:11:22:33:44:55 * eth0",
            1,
            "10.0.0.300",
        );
        check("10.0.0.1 0x1 0xZZ 00:11:22:33:44:55 * eth0", 1, "0xZZ");
        check("10.0.0.1 0x1 0x2 00:11:22:33:44 * eth0", 1, "MAC");
    }
}
