//! A small iCalendar (RFC 5545) writer for meeting invitations: one `VEVENT` with `METHOD:REQUEST`
//! (or `CANCEL`), times in the meeting's time zone with a generated `VTIMEZONE`, text escaped and
//! lines folded at 75 octets.
//!
//! # The `VTIMEZONE`
//!
//! chrono-tz has the zone's transitions but not its recurrence rules, so the `VTIMEZONE` lists the
//! zone's actual observances as single (non-recurring) `STANDARD`/`DAYLIGHT` sub-components: the
//! one in force a year before the meeting, then every offset change up to a year after its end.
//! That is exact for the meeting's own times, which is all an invitation needs (RFC 5545 §3.6.5
//! allows observances without `RRULE`). Two cases fall back to UTC times (`...Z`, no `TZID`): a
//! zone that is UTC itself, and a start or end that falls in the repeated hour when clocks go back
//! (a local time there is ambiguous, and RFC 5545 would read it as the first one).

use std::fmt::Write as _;

use chrono::{DateTime, Duration, LocalResult, NaiveDateTime, Offset as _, TimeZone as _, Utc};
use chrono_tz::{OffsetComponents as _, OffsetName as _, Tz};

/// A meeting to invite to.
#[derive(Debug, Clone)]
pub(crate) struct Meeting<'a> {
    /// Stable across updates; the calendar matches updates to the event by it.
    pub uid: &'a str,
    /// Incremented by each update.
    pub sequence: i64,
    pub title: &'a str,
    pub description: Option<&'a str>,
    pub location: Option<&'a str>,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub tz: Tz,
    pub organizer_name: Option<&'a str>,
    pub organizer_email: &'a str,
    pub attendee_name: Option<&'a str>,
    pub attendee_email: &'a str,
    /// When this version of the invitation was made (the message's queue time, so every
    /// redelivery carries the same calendar).
    pub stamp: DateTime<Utc>,
    /// `METHOD:CANCEL` and `STATUS:CANCELLED` instead of a request.
    pub cancelled: bool,
}

/// Longest line, in octets, without its CRLF (RFC 5545 §3.1).
const FOLD_AT: usize = 75;

/// Escapes a TEXT value (RFC 5545 §3.3.11): backslash, semicolon, comma and line breaks.
pub(crate) fn escape_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(ch) = chars.next() {
        match ch {
            '\\' => out.push_str("\\\\"),
            ';' => out.push_str("\\;"),
            ',' => out.push_str("\\,"),
            '\r' => {
                if chars.peek() == Some(&'\n') {
                    chars.next();
                }
                out.push_str("\\n");
            }
            '\n' => out.push_str("\\n"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// A parameter value, always quoted; the quote itself and control characters cannot appear in
/// one (RFC 5545 §3.2), so they become `'` and a space.
fn param(text: &str) -> String {
    let inner: String = text
        .chars()
        .map(|c| match c {
            '"' => '\'',
            c if c.is_control() => ' ',
            c => c,
        })
        .collect();
    format!("\"{}\"", inner.trim())
}

/// Folds one content line: at most 75 octets per line, continuation lines starting with a space,
/// never splitting a UTF-8 character.
pub(crate) fn fold(line: &str, out: &mut String) {
    let mut budget = FOLD_AT;
    let mut used = 0;
    for ch in line.chars() {
        let len = ch.len_utf8();
        if used + len > budget {
            out.push_str("\r\n ");
            budget = FOLD_AT - 1;
            used = 0;
        }
        out.push(ch);
        used += len;
    }
    out.push_str("\r\n");
}

fn utc(t: DateTime<Utc>) -> String {
    t.format("%Y%m%dT%H%M%SZ").to_string()
}

fn local(t: NaiveDateTime) -> String {
    t.format("%Y%m%dT%H%M%S").to_string()
}

/// `+HHMM` (or `+HHMMSS`).
fn offset(seconds: i32) -> String {
    let sign = if seconds < 0 { '-' } else { '+' };
    let s = seconds.unsigned_abs();
    let (h, m, sec) = (s / 3600, s / 60 % 60, s % 60);
    if sec == 0 {
        format!("{sign}{h:02}{m:02}")
    } else {
        format!("{sign}{h:02}{m:02}{sec:02}")
    }
}

/// What identifies an observance: total offset and whether it is daylight time.
fn observance_at(tz: Tz, t: DateTime<Utc>) -> (i32, bool, String) {
    let o = tz.offset_from_utc_datetime(&t.naive_utc());
    let total = o.fix().local_minus_utc();
    let dst = o.dst_offset() != Duration::zero();
    (total, dst, o.abbreviation().unwrap_or("").to_owned())
}

/// The wall time of `t` in `tz`, unless it is ambiguous or the zone is UTC (then `None`).
fn wall_time(tz: Tz, t: DateTime<Utc>) -> Option<NaiveDateTime> {
    let wall = t.with_timezone(&tz).naive_local();
    match tz.from_local_datetime(&wall) {
        LocalResult::Single(_) => Some(wall),
        LocalResult::Ambiguous(first, _) if first.with_timezone(&Utc) == t => Some(wall),
        _ => None,
    }
}

fn is_utc(tz: Tz) -> bool {
    matches!(
        tz,
        Tz::UTC | Tz::Etc__UTC | Tz::Etc__UCT | Tz::Etc__Universal | Tz::Etc__Zulu | Tz::UCT | Tz::Universal | Tz::Zulu
    )
}

/// The `VTIMEZONE` lines for `tz` covering `from..=to` (see the module documentation).
fn vtimezone(tz: Tz, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<String> {
    let mut lines = vec!["BEGIN:VTIMEZONE".to_owned(), format!("TZID:{}", tz.name())];
    let observance = |lines: &mut Vec<String>, start: NaiveDateTime, from_off: i32, now: &(i32, bool, String)| {
        let kind = if now.1 { "DAYLIGHT" } else { "STANDARD" };
        lines.push(format!("BEGIN:{kind}"));
        lines.push(format!("DTSTART:{}", local(start)));
        lines.push(format!("TZOFFSETFROM:{}", offset(from_off)));
        lines.push(format!("TZOFFSETTO:{}", offset(now.0)));
        if !now.2.is_empty() && !now.2.starts_with(['+', '-']) {
            lines.push(format!("TZNAME:{}", escape_text(&now.2)));
        }
        lines.push(format!("END:{kind}"));
    };
    let mut current = observance_at(tz, from);
    observance(
        &mut lines,
        from.naive_utc() + Duration::seconds(i64::from(current.0)),
        current.0,
        &current,
    );
    let mut t = from;
    while t < to {
        let next = t + Duration::hours(1);
        let there = observance_at(tz, next);
        if (there.0, there.1) != (current.0, current.1) {
            // the first second of the new observance, between t and next
            let (mut lo, mut hi) = (t, next);
            while hi - lo > Duration::seconds(1) {
                let mid = lo + (hi - lo) / 2;
                let m = observance_at(tz, mid);
                if (m.0, m.1) == (current.0, current.1) {
                    lo = mid;
                } else {
                    hi = mid;
                }
            }
            let onset = hi.naive_utc() + Duration::seconds(i64::from(current.0));
            let now = observance_at(tz, hi);
            observance(&mut lines, onset, current.0, &now);
            current = now;
        }
        t = next;
    }
    lines.push("END:VTIMEZONE".to_owned());
    lines
}

/// The calendar object (CRLF line ends, folded).
pub(crate) fn calendar(m: &Meeting<'_>) -> String {
    let window = (m.ends_at - m.starts_at) <= Duration::days(366 * 3);
    let walls = if is_utc(m.tz) || !window {
        None
    } else {
        wall_time(m.tz, m.starts_at).zip(wall_time(m.tz, m.ends_at))
    };
    let mut lines = vec![
        "BEGIN:VCALENDAR".to_owned(),
        "VERSION:2.0".to_owned(),
        "PRODID:-//portal-engine//portal-mail//EN".to_owned(),
        "CALSCALE:GREGORIAN".to_owned(),
        format!("METHOD:{}", if m.cancelled { "CANCEL" } else { "REQUEST" }),
    ];
    let (start, end) = match walls {
        Some((start, end)) => {
            lines.extend(vtimezone(
                m.tz,
                m.starts_at - Duration::days(366),
                m.ends_at + Duration::days(366),
            ));
            let tzid = m.tz.name();
            (
                format!("DTSTART;TZID={tzid}:{}", local(start)),
                format!("DTEND;TZID={tzid}:{}", local(end)),
            )
        }
        None => (
            format!("DTSTART:{}", utc(m.starts_at)),
            format!("DTEND:{}", utc(m.ends_at)),
        ),
    };
    lines.push("BEGIN:VEVENT".to_owned());
    lines.push(format!("UID:{}", escape_text(m.uid)));
    lines.push(format!("SEQUENCE:{}", m.sequence));
    lines.push(format!("DTSTAMP:{}", utc(m.stamp)));
    lines.push(start);
    lines.push(end);
    lines.push(format!("SUMMARY:{}", escape_text(m.title)));
    if let Some(d) = m.description.filter(|d| !d.trim().is_empty()) {
        lines.push(format!("DESCRIPTION:{}", escape_text(d)));
    }
    if let Some(l) = m.location.filter(|l| !l.trim().is_empty()) {
        lines.push(format!("LOCATION:{}", escape_text(l)));
    }
    let mut organizer = "ORGANIZER".to_owned();
    if let Some(name) = m.organizer_name.filter(|n| !n.trim().is_empty()) {
        let _ = write!(organizer, ";CN={}", param(name));
    }
    let _ = write!(organizer, ":mailto:{}", m.organizer_email);
    lines.push(organizer);
    let mut attendee = "ATTENDEE".to_owned();
    if let Some(name) = m.attendee_name.filter(|n| !n.trim().is_empty()) {
        let _ = write!(attendee, ";CN={}", param(name));
    }
    let _ = write!(
        attendee,
        ";CUTYPE=INDIVIDUAL;ROLE=REQ-PARTICIPANT;PARTSTAT=NEEDS-ACTION;RSVP=TRUE:mailto:{}",
        m.attendee_email
    );
    lines.push(attendee);
    lines.push(format!(
        "STATUS:{}",
        if m.cancelled { "CANCELLED" } else { "CONFIRMED" }
    ));
    lines.push("TRANSP:OPAQUE".to_owned());
    lines.push("END:VEVENT".to_owned());
    lines.push("END:VCALENDAR".to_owned());
    let mut out = String::new();
    for line in &lines {
        fold(line, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use icalendar::parser::{read_calendar, unfold};

    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn meeting(tz: Tz, start: &str, end: &str) -> Meeting<'static> {
        Meeting {
            uid: "meeting-1@portal.example",
            sequence: 0,
            title: "Kick-off",
            description: None,
            location: None,
            starts_at: at(start),
            ends_at: at(end),
            tz,
            organizer_name: Some("Tess Tech"),
            organizer_email: "tess@acme-it.example",
            attendee_name: Some("Priya \"P\" Patel"),
            attendee_email: "priya@northwind.example",
            stamp: at("2026-03-01T09:00:00Z"),
            cancelled: false,
        }
    }

    #[test]
    fn folds_at_75_octets_on_character_boundaries() {
        let long = format!("DESCRIPTION:{}", "é€😀a".repeat(40));
        let mut out = String::new();
        fold(&long, &mut out);
        for l in out.split("\r\n").filter(|l| !l.is_empty()) {
            assert!(l.len() <= 75, "{} octets: {l}", l.len());
        }
        assert_eq!(unfold(&out).trim_end(), long);
        let mut short = String::new();
        fold("UID:x", &mut short);
        assert_eq!(short, "UID:x\r\n");
    }

    #[test]
    fn text_is_escaped_and_round_trips_through_a_parser() {
        let mut m = meeting(Tz::Europe__London, "2026-03-03T14:00:00Z", "2026-03-03T15:00:00Z");
        let description = "Agenda; scope, plan\r\nand a back\\slash — déjà vu ".repeat(5);
        m.description = Some(&description);
        m.location = Some("Room 1, Floor 2; Building \"A\"");
        let ics = calendar(&m);
        assert!(ics.contains("LOCATION:Room 1\\, Floor 2\\; Building \"A\""));
        assert!(ics.lines().all(|l| l.len() <= 75));
        assert!(ics.ends_with("END:VCALENDAR\r\n"));
        let unfolded = unfold(&ics);
        let cal = read_calendar(&unfolded).unwrap();
        let event = cal.components.iter().find(|c| c.name == "VEVENT").unwrap();
        let d = event.find_prop("DESCRIPTION").unwrap().val.clone().unescape_text();
        assert_eq!(d.as_str(), description.replace("\r\n", "\n"));
        let attendee = event.find_prop("ATTENDEE").unwrap();
        assert_eq!(attendee.val.as_str(), "mailto:priya@northwind.example");
        let cn = attendee.params.iter().find(|p| p.key == "CN").unwrap();
        // written quoted (`CN="Priya 'P' Patel"`); the parser strips the quotes
        assert_eq!(cn.val.as_ref().unwrap().as_str(), "Priya 'P' Patel");
        assert!(ics.contains("ATTENDEE;CN=\"Priya 'P' Patel\";"));
    }

    #[test]
    fn times_carry_the_zone_and_a_vtimezone_with_its_real_transitions() {
        // 14:00 UTC on 3 March 2026 is 14:00 GMT; the event is in London's winter time.
        let ics = calendar(&meeting(
            Tz::Europe__London,
            "2026-03-03T14:00:00Z",
            "2026-03-03T15:00:00Z",
        ));
        assert!(ics.contains("DTSTART;TZID=Europe/London:20260303T140000\r\n"), "{ics}");
        assert!(ics.contains("DTEND;TZID=Europe/London:20260303T150000\r\n"));
        // British Summer Time starts at 01:00 UTC on the last Sunday of March: 29 March 2026,
        // 01:00 local (GMT) becomes 02:00 (BST).
        assert!(ics.contains(
            "BEGIN:DAYLIGHT\r\nDTSTART:20260329T010000\r\nTZOFFSETFROM:+0000\r\nTZOFFSETTO:+0100\r\nTZNAME:BST\r\nEND:DAYLIGHT"
        ));
        // and ends at 01:00 UTC on 25 October 2026: 02:00 local (BST) becomes 01:00 (GMT).
        assert!(ics.contains(
            "BEGIN:STANDARD\r\nDTSTART:20261025T020000\r\nTZOFFSETFROM:+0100\r\nTZOFFSETTO:+0000\r\nTZNAME:GMT\r\nEND:STANDARD"
        ));

        let ny = calendar(&meeting(
            Tz::America__New_York,
            "2026-07-01T14:00:00Z",
            "2026-07-01T15:30:00Z",
        ));
        assert!(ny.contains("DTSTART;TZID=America/New_York:20260701T100000\r\n"), "{ny}");
        assert!(ny.contains("DTEND;TZID=America/New_York:20260701T113000\r\n"));
        assert!(ny.contains("DTSTART:20260308T020000\r\nTZOFFSETFROM:-0500\r\nTZOFFSETTO:-0400"));

        // a zone without daylight time has one observance
        let tokyo = calendar(&meeting(
            Tz::Asia__Tokyo,
            "2026-07-01T01:00:00Z",
            "2026-07-01T02:00:00Z",
        ));
        assert_eq!(tokyo.matches("BEGIN:STANDARD").count(), 1);
        assert!(!tokyo.contains("DAYLIGHT"));
        assert!(tokyo.contains("DTSTART;TZID=Asia/Tokyo:20260701T100000"));
    }

    #[test]
    fn utc_and_ambiguous_times_are_written_in_utc() {
        let ics = calendar(&meeting(Tz::UTC, "2026-03-03T14:00:00Z", "2026-03-03T15:00:00Z"));
        assert!(ics.contains("DTSTART:20260303T140000Z\r\n"));
        assert!(!ics.contains("VTIMEZONE"));
        // 01:30 BST on 25 October 2026 (00:30 UTC) is the first 01:30; 01:30 GMT (01:30 UTC)
        // is the repeated one, ambiguous as a wall time.
        let first = calendar(&meeting(
            Tz::Europe__London,
            "2026-10-25T00:30:00Z",
            "2026-10-25T03:00:00Z",
        ));
        assert!(first.contains("DTSTART;TZID=Europe/London:20261025T013000"));
        let second = calendar(&meeting(
            Tz::Europe__London,
            "2026-10-25T01:30:00Z",
            "2026-10-25T03:00:00Z",
        ));
        assert!(second.contains("DTSTART:20261025T013000Z"), "{second}");
    }

    #[test]
    fn a_cancellation_says_so() {
        let mut m = meeting(Tz::Europe__London, "2026-03-03T14:00:00Z", "2026-03-03T15:00:00Z");
        m.cancelled = true;
        m.sequence = 3;
        let ics = calendar(&m);
        assert!(ics.contains("METHOD:CANCEL\r\n"));
        assert!(ics.contains("STATUS:CANCELLED\r\n"));
        assert!(ics.contains("SEQUENCE:3\r\n"));
    }

    #[test]
    fn offsets_format() {
        assert_eq!(offset(0), "+0000");
        assert_eq!(offset(-5 * 3600), "-0500");
        assert_eq!(offset(5 * 3600 + 45 * 60), "+0545");
        assert_eq!(offset(-(3600 + 15)), "-010015");
    }
}
