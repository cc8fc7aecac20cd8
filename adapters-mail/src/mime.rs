//! The RFC 5322 message of an [`OutgoingEmail`], built with `lettre` (shared by the SMTP and file
//! transports), and the header hygiene every transport applies.

use std::str::FromStr;

use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Attachment, MultiPart, SinglePart};
use lettre::{Address, Message};
use portal_core::mail::{Mailbox, OutgoingEmail, SendError};

/// The header that carries the idempotency key on every attempt.
pub(crate) const IDEMPOTENCY_HEADER: &str = "X-Portal-Idempotency-Key";

/// Headers a transport sets itself: an extra header may not name them.
const RESERVED_HEADERS: &[&str] = &[
    "bcc",
    "cc",
    "content-disposition",
    "content-id",
    "content-transfer-encoding",
    "content-type",
    "date",
    "from",
    "message-id",
    "mime-version",
    "reply-to",
    "return-path",
    "sender",
    "subject",
    "to",
    "x-portal-idempotency-key",
];

/// `text` on one line: every control character (CR, LF, tab, NEL, the Unicode line and paragraph
/// separators) becomes a space, runs of white space become one space, and the ends are trimmed.
/// Applied to everything that lands in a header (subjects, display names, header values).
pub(crate) fn one_line(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut space = false;
    for ch in text.chars() {
        if ch.is_control() || ch.is_whitespace() {
            space = true;
        } else {
            if space && !out.is_empty() {
                out.push(' ');
            }
            space = false;
            out.push(ch);
        }
    }
    out
}

/// Whether `name` is a header field name (RFC 5322 `ftext`: printable ASCII but `:`).
fn is_field_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 76 && name.bytes().all(|b| (33..=126).contains(&b) && b != b':')
}

/// Whether `id` can go between the angle brackets of a `Message-ID`.
fn is_message_id(id: &str) -> bool {
    let Some((left, right)) = id.split_once('@') else {
        return false;
    };
    !left.is_empty()
        && !right.is_empty()
        && id
            .bytes()
            .all(|b| (33..=126).contains(&b) && !matches!(b, b'<' | b'>' | b'"' | b'\\' | b'(' | b')' | b',' | b';'))
}

/// The extra headers of `email`, checked: a valid name that no transport sets itself, and the
/// value flattened to one line.
///
/// # Errors
///
/// [`SendError::Permanent`] for a malformed or reserved name.
pub(crate) fn extra_headers(email: &OutgoingEmail) -> Result<Vec<(String, String)>, SendError> {
    email
        .headers
        .iter()
        .map(|(name, value)| {
            if !is_field_name(name) {
                return Err(SendError::Permanent(format!(
                    "extra header name {:?} is not a valid header name",
                    one_line(name)
                )));
            }
            if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
                return Err(SendError::Permanent(format!(
                    "extra header {name} is set by the transport and may not be given"
                )));
            }
            Ok((name.clone(), one_line(value)))
        })
        .collect()
}

/// The `Message-ID` of `email` in angle brackets.
///
/// # Errors
///
/// [`SendError::Permanent`] when it is not of the form `left@right` in printable ASCII.
pub(crate) fn message_id_header(email: &OutgoingEmail) -> Result<String, SendError> {
    if is_message_id(&email.message_id) {
        Ok(format!("<{}>", email.message_id))
    } else {
        Err(SendError::Permanent(format!(
            "message id {:?} is not of the form left@right",
            one_line(&email.message_id)
        )))
    }
}

fn mailbox(m: &Mailbox) -> Result<lettre::message::Mailbox, SendError> {
    let address = Address::from_str(m.email.as_str())
        .map_err(|e| SendError::Permanent(format!("address {} cannot be used: {e}", m.email.as_str())))?;
    let name = m.name.as_deref().map(one_line).filter(|n| !n.is_empty());
    Ok(lettre::message::Mailbox::new(name, address))
}

/// The message of `email`: `multipart/alternative` text and HTML, inside `multipart/mixed` with
/// the attachments when there are any; our `Message-ID`, the idempotency key header and the
/// extra headers.
///
/// # Errors
///
/// [`SendError::Permanent`]: the email cannot be expressed as a message (an address `lettre`
/// refuses, a malformed extra header or content type). Retrying would not help.
pub(crate) fn build_message(email: &OutgoingEmail) -> Result<Message, SendError> {
    let mut builder = Message::builder()
        .from(mailbox(&email.from)?)
        .to(mailbox(&email.to)?)
        .subject(one_line(&email.subject))
        .message_id(Some(message_id_header(email)?))
        .raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str(IDEMPOTENCY_HEADER),
            one_line(&email.idempotency_key),
        ));
    if let Some(reply_to) = &email.reply_to {
        builder = builder.reply_to(mailbox(reply_to)?);
    }
    for (name, value) in extra_headers(email)? {
        let name = HeaderName::new_from_ascii(name)
            .map_err(|_| SendError::Permanent("an extra header name is not valid".to_owned()))?;
        builder = builder.raw_header(HeaderValue::new(name, value));
    }
    let alternative = MultiPart::alternative()
        .singlepart(
            SinglePart::builder()
                .header(ContentType::TEXT_PLAIN)
                .body(email.text.clone()),
        )
        .singlepart(
            SinglePart::builder()
                .header(ContentType::TEXT_HTML)
                .body(email.html.clone()),
        );
    let body = if email.attachments.is_empty() {
        alternative
    } else {
        let mut mixed = MultiPart::mixed().multipart(alternative);
        for a in &email.attachments {
            let content_type = ContentType::parse(&a.content_type).map_err(|e| {
                SendError::Permanent(format!(
                    "attachment content type {:?} is not valid: {e}",
                    a.content_type
                ))
            })?;
            mixed = mixed.singlepart(Attachment::new(one_line(&a.filename)).body(a.content.clone(), content_type));
        }
        mixed
    };
    builder
        .multipart(body)
        .map_err(|e| SendError::Permanent(format!("the message cannot be built: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_flattens_every_line_break() {
        assert_eq!(one_line("  Acme\r\nBcc: evil@x\u{2028}y\t z "), "Acme Bcc: evil@x y z");
        assert_eq!(one_line("\r\n"), "");
    }

    #[test]
    fn header_names_and_ids_are_checked() {
        assert!(is_field_name("List-Unsubscribe"));
        assert!(!is_field_name("Bad Name"));
        assert!(!is_field_name("Bad:Name"));
        assert!(!is_field_name("Bad\r\nName"));
        assert!(is_message_id("0190a-b@portal.example"));
        assert!(!is_message_id("x>\r\nBcc: y@z"));
        assert!(!is_message_id("no-at-sign"));
    }
}
