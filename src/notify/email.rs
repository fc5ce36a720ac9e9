//! Email over SMTP (`smtp://`, `smtps://`) through lettre: a plain-text
//! message, the title as its subject.

use anyhow::{Context, Result};
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::message::Told;
use super::target::SmtpSecurity;
use crate::config::notify::TIMEOUT;
use crate::env::Secret;

/// The SMTP server to send through and the envelope, borrowed from a `Target::Smtp` receiver.
pub struct Smtp<'a> {
    /// The SMTP server's host name.
    pub host: &'a str,
    /// The SMTP server's port.
    pub port: u16,
    /// How the connection is protected: plain, STARTTLS or TLS.
    pub security: SmtpSecurity,
    /// The user name and password to log in with, if the receiver's URL gave any.
    pub auth: Option<&'a (String, Secret)>,
    /// The sender's address (the email's `From`).
    pub from: &'a str,
    /// The recipients' addresses (the email's `To`).
    pub to: &'a [String],
}

/// Builds the plain-text email for `m`: the title as its subject, the text as its body.
pub fn message(s: &Smtp<'_>, m: &Told) -> Result<Message> {
    let mut b = Message::builder()
        .from(s.from.parse().context("bad from address")?)
        .subject(&m.title)
        .header(ContentType::TEXT_PLAIN);
    for a in s.to {
        b = b.to(a.parse().context("bad to address")?);
    }
    b.body(m.text.clone()).context("cannot build the email")
}

/// Sends the email for `m` through the SMTP server `s` names, logging in when it has a login.
pub async fn send(s: &Smtp<'_>, m: &Told) -> Result<()> {
    let msg = message(s, m)?;
    let builder = match s.security {
        SmtpSecurity::Plain => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(s.host),
        SmtpSecurity::StartTls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(s.host)?,
        SmtpSecurity::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(s.host)?,
    };
    let mut builder = builder.port(s.port).timeout(Some(TIMEOUT));
    if let Some((user, pw)) = s.auth {
        builder = builder.credentials(Credentials::new(user.clone(), pw.expose().into()));
    }
    builder.build().send(msg).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subject_sender_and_every_recipient() {
        let to = vec!["a@example.org".to_string(), "b@example.org".to_string()];
        let s = Smtp {
            host: "mail",
            port: 25,
            security: SmtpSecurity::Plain,
            auth: None,
            from: "bk@example.org",
            to: &to,
        };
        let m = Told::sample(false);
        let text = String::from_utf8(message(&s, &m).unwrap().formatted()).unwrap();
        assert!(text.contains(&format!("Subject: {}", m.title)), "{text}");
        assert!(text.contains("From: bk@example.org"), "{text}");
        assert!(
            text.contains("a@example.org") && text.contains("b@example.org"),
            "{text}"
        );
    }
}
