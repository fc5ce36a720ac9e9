//! The databases a SQL dump creates, read from its statements: what
//! `restore database --replace` drops before an all-databases dump is loaded.
//!
//! A line that merely starts with `CREATE DATABASE` proves nothing: it may be
//! a row of a `COPY … FROM stdin;` data block, a line of a multi-line string,
//! of a function body or of a comment. So the dump is lexed as its client
//! (`psql`, `mariadb`) reads it: strings, quoted identifiers, dollar quotes,
//! comments, `COPY` data, psql's backslash commands and the MariaDB client's
//! `DELIMITER`; only a whole statement `CREATE DATABASE <name> …` counts, its
//! name unquoted exactly (`"my db"`, `"a""b"`, `` `x``y` ``). Pure: fed line by
//! line, it holds at most one statement's first few tokens.

use crate::dumps::sql_text::{self, dollar_tag, is_ident_byte, trim_eol};
use crate::labels::Engine as DbEngine;

/// Tokens kept from the start of a statement: `CREATE DATABASE IF NOT EXISTS name`.
const HEAD: usize = 6;
/// The longest quoted identifier read (PostgreSQL's and MariaDB's are far
/// shorter): a longer one is no name, never a truncated one.
const MAX_IDENT: usize = 1024;

/// Which client's rules the dump is read with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// `psql` reading `pg_dump`/`pg_dumpall` output.
    Postgres,
    /// `mariadb`/`mysql` reading `mariadb-dump`/`mysqldump` output.
    Maria,
}

impl Dialect {
    /// The dialect of an engine's dumps (`None`: not a SQL dump).
    pub fn of(engine: DbEngine) -> Option<Dialect> {
        match engine {
            DbEngine::Postgres => Some(Dialect::Postgres),
            DbEngine::Mariadb | DbEngine::Mysql => Some(Dialect::Maria),
            DbEngine::Redis | DbEngine::Sqlite => None,
        }
    }
}

/// A significant token at the start or end of a statement.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    /// An unquoted word (keyword or identifier).
    Word(String),
    /// A quoted identifier, unquoted.
    Quoted(String),
    /// Anything else (a string, a number, punctuation).
    Other,
}

/// Where the lexer is between two bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// Plain SQL text, outside any literal, quoted identifier or comment.
    Code,
    /// A string literal closed by `quote`; `backslash`: `\` escapes.
    Str { quote: u8, backslash: bool },
    /// A quoted identifier closed by `quote` (collected).
    Ident { quote: u8 },
    /// A PostgreSQL dollar-quoted string closed by this tag (`$$`, `$body$`).
    Dollar(Vec<u8>),
    /// A block comment, nested this deep (PostgreSQL nests them).
    Block(u32),
    /// The rows of a `COPY … FROM stdin;`, up to the line `\.`.
    CopyData,
}

/// Reads a dump line by line and gathers the databases its statements create.
#[derive(Debug, Clone)]
pub struct Scanner {
    dialect: Dialect,
    state: State,
    /// The statement terminator (`;`, or what MariaDB's `DELIMITER` set).
    delimiter: Vec<u8>,
    /// The current statement's first tokens.
    head: Vec<Token>,
    /// The current statement's last two tokens (for `FROM stdin`).
    tail: [Option<Token>; 2],
    /// The quoted identifier being read.
    ident: Vec<u8>,
    /// A `COPY … FROM stdin;` ended on this line: its rows start on the next.
    copy_next: bool,
    /// The databases created, in order, each once.
    found: Vec<String>,
    /// Bytes of a line not ended yet (see [`Scanner::feed`]).
    pending: Vec<u8>,
}

impl Scanner {
    /// A scanner at the start of a dump.
    pub fn new(dialect: Dialect) -> Scanner {
        Scanner {
            dialect,
            state: State::Code,
            delimiter: b";".to_vec(),
            head: Vec::new(),
            tail: [None, None],
            ident: Vec::new(),
            copy_next: false,
            found: Vec::new(),
            pending: Vec::new(),
        }
    }

    /// The dialect it reads.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// Reads the next bytes of the dump, in chunks cut anywhere.
    pub fn feed(&mut self, chunk: &[u8]) {
        let mut rest = chunk;
        while let Some(nl) = rest.iter().position(|&b| b == b'\n') {
            let (line, after) = rest.split_at(nl + 1);
            if self.pending.is_empty() {
                self.line(line);
            } else {
                let mut whole = std::mem::take(&mut self.pending);
                whole.extend_from_slice(line);
                self.line(&whole);
            }
            rest = after;
        }
        self.pending.extend_from_slice(rest);
        // A row of COPY data matters only if it is `\.`: a long one (a large
        // value) is not kept whole.
        if self.state == State::CopyData && self.pending.len() > 4 {
            self.pending.truncate(4);
        }
    }

    /// The databases created by the whole dump (a last line without a
    /// newline included; a statement left unterminated is not).
    pub fn finish(mut self) -> Vec<String> {
        if !self.pending.is_empty() {
            let last = std::mem::take(&mut self.pending);
            self.line(&last);
        }
        self.found
    }

    /// One line, its newline included.
    fn line(&mut self, line: &[u8]) {
        if self.state == State::CopyData {
            if trim_eol(line) == b"\\." {
                self.state = State::Code;
            }
            return;
        }
        if self.state == State::Code
            && self.head.is_empty()
            && self.dialect == Dialect::Maria
            && self.delimiter_command(line)
        {
            return;
        }
        let mut i = 0;
        while i < line.len() {
            i = match self.state.clone() {
                State::Code => self.code(line, i),
                State::Str { quote, backslash } => self.string(line, i, quote, backslash),
                State::Ident { quote } => self.quoted_ident(line, i, quote),
                State::Dollar(tag) => self.dollar(line, i, &tag),
                State::Block(depth) => self.block(line, i, depth),
                State::CopyData => line.len(),
            };
        }
        if std::mem::take(&mut self.copy_next) {
            self.state = State::CopyData;
        }
    }

    /// The MariaDB client's `DELIMITER x` line, at a statement's start.
    fn delimiter_command(&mut self, line: &[u8]) -> bool {
        match sql_text::delimiter_command(line) {
            None => false,
            Some(d) => {
                if let Some(d) = d {
                    self.delimiter = d;
                }
                true
            }
        }
    }

    /// Plain SQL at `line[i]`; returns where to go on.
    fn code(&mut self, line: &[u8], i: usize) -> usize {
        let b = line[i];
        let next = line.get(i + 1).copied();
        let pg = self.dialect == Dialect::Postgres;
        if line[i..].starts_with(&self.delimiter) {
            self.end_statement();
            return i + self.delimiter.len();
        }
        match b {
            _ if b.is_ascii_whitespace() => i + 1,
            // psql's backslash commands (`\connect`, `\restrict`) take the rest of the line.
            b'\\' if pg => line.len(),
            b'-' if next == Some(b'-')
                && (pg
                    || line
                        .get(i + 2)
                        .is_none_or(|c| c.is_ascii_whitespace() || c.is_ascii_control())) =>
            {
                line.len()
            }
            b'#' if !pg => line.len(),
            b'/' if next == Some(b'*') => {
                self.state = State::Block(1);
                i + 2
            }
            b'\'' => {
                // PostgreSQL's E'…' strings take backslash escapes.
                let e_string =
                    pg && i > 0 && matches!(line[i - 1], b'E' | b'e') && self.last_is_e();
                self.push(Token::Other);
                self.state = State::Str {
                    quote: b,
                    backslash: !pg || e_string,
                };
                i + 1
            }
            // MariaDB: a string (unless ANSI_QUOTES, which its dumps do not set).
            b'"' if !pg => {
                self.push(Token::Other);
                self.state = State::Str {
                    quote: b,
                    backslash: true,
                };
                i + 1
            }
            b'"' if pg => self.open_ident(b, i),
            b'`' if !pg => self.open_ident(b, i),
            b'$' if pg && (i == 0 || !is_ident_byte(line[i - 1])) => match dollar_tag(&line[i..]) {
                Some(tag) => {
                    let end = i + tag.len();
                    self.push(Token::Other);
                    self.state = State::Dollar(tag);
                    end
                }
                None => {
                    self.push(Token::Other);
                    i + 1
                }
            },
            _ if is_ident_byte(b) => {
                let end = i + line[i..].iter().take_while(|&&c| is_ident_byte(c)).count();
                self.push_word(&line[i..end]);
                end
            }
            _ => {
                self.push(Token::Other);
                i + 1
            }
        }
    }

    /// Inside a string literal.
    fn string(&mut self, line: &[u8], mut i: usize, quote: u8, backslash: bool) -> usize {
        while i < line.len() {
            match line[i] {
                b'\\' if backslash => i += 2,
                c if c == quote && line.get(i + 1) == Some(&quote) => i += 2,
                c if c == quote => {
                    self.state = State::Code;
                    return i + 1;
                }
                _ => i += 1,
            }
        }
        line.len()
    }

    /// Inside a quoted identifier: collects it.
    fn quoted_ident(&mut self, line: &[u8], mut i: usize, quote: u8) -> usize {
        while i < line.len() {
            let c = line[i];
            if c == quote && line.get(i + 1) == Some(&quote) {
                i += 2;
            } else if c == quote {
                let t = if self.head.len() < HEAD && self.ident.len() <= MAX_IDENT {
                    Token::Quoted(String::from_utf8_lossy(&self.ident).into_owned())
                } else {
                    Token::Other
                };
                self.push(t);
                self.state = State::Code;
                return i + 1;
            } else {
                i += 1;
            }
            if self.ident.len() <= MAX_IDENT {
                self.ident.push(c);
            }
        }
        line.len()
    }

    /// Inside a dollar-quoted string.
    fn dollar(&mut self, line: &[u8], i: usize, tag: &[u8]) -> usize {
        match line[i..].windows(tag.len()).position(|w| w == tag) {
            Some(at) => {
                self.state = State::Code;
                i + at + tag.len()
            }
            None => line.len(),
        }
    }

    /// Inside a block comment.
    fn block(&mut self, line: &[u8], mut i: usize, mut depth: u32) -> usize {
        while i < line.len() {
            if line[i..].starts_with(b"*/") {
                depth -= 1;
                i += 2;
                if depth == 0 {
                    self.state = State::Code;
                    return i;
                }
            } else if self.dialect == Dialect::Postgres && line[i..].starts_with(b"/*") {
                depth += 1;
                i += 2;
            } else {
                i += 1;
            }
        }
        self.state = State::Block(depth);
        line.len()
    }

    /// A quoted identifier starts at `line[i]`.
    fn open_ident(&mut self, quote: u8, i: usize) -> usize {
        self.ident.clear();
        self.state = State::Ident { quote };
        i + 1
    }

    fn push(&mut self, t: Token) {
        if self.head.len() < HEAD {
            self.head.push(t.clone());
        }
        self.tail = [self.tail[1].take(), Some(t)];
    }

    /// An unquoted word; kept as text only where it may matter (the head of
    /// the statement, `FROM stdin`, an `E` prefix), so that the rows of a
    /// large `INSERT` cost no allocation.
    fn push_word(&mut self, w: &[u8]) {
        let keep = self.head.len() < HEAD
            || [b"FROM".as_slice(), b"stdin", b"E"]
                .iter()
                .any(|k| w.eq_ignore_ascii_case(k));
        self.push(if keep {
            Token::Word(String::from_utf8_lossy(w).into_owned())
        } else {
            Token::Other
        });
    }

    fn last_is_e(&self) -> bool {
        matches!(&self.tail[1], Some(Token::Word(w)) if w.eq_ignore_ascii_case("e"))
    }

    /// A statement ended: notes the database it creates, or the `COPY` data
    /// that follows it.
    fn end_statement(&mut self) {
        if let Some(name) = created_name(self.dialect, &self.head)
            && !self.found.contains(&name)
        {
            self.found.push(name);
        }
        if self.dialect == Dialect::Postgres && is_copy_from_stdin(&self.head, &self.tail) {
            self.copy_next = true;
        }
        self.head.clear();
        self.tail = [None, None];
    }
}

/// The databases `dump` creates, read with `dialect`'s rules.
pub fn created_databases(dialect: Dialect, dump: &[u8]) -> Vec<String> {
    let mut s = Scanner::new(dialect);
    s.feed(dump);
    s.finish()
}

/// The name a statement starting with `head` creates, if it is `CREATE
/// DATABASE [IF NOT EXISTS] <name>`.
fn created_name(dialect: Dialect, head: &[Token]) -> Option<String> {
    let word =
        |t: Option<&Token>, w: &str| matches!(t, Some(Token::Word(x)) if x.eq_ignore_ascii_case(w));
    if !(word(head.first(), "CREATE") && word(head.get(1), "DATABASE")) {
        return None;
    }
    let mut rest = &head[2..];
    if dialect == Dialect::Maria
        && word(rest.first(), "IF")
        && word(rest.get(1), "NOT")
        && word(rest.get(2), "EXISTS")
    {
        rest = &rest[3..];
    }
    match rest.first()? {
        Token::Quoted(name) => Some(name.clone()),
        // PostgreSQL folds an unquoted name to lower case (pg_dump quotes
        // any other); MariaDB keeps it.
        Token::Word(w) if dialect == Dialect::Postgres => Some(w.to_ascii_lowercase()),
        Token::Word(w) => Some(w.clone()),
        Token::Other => None,
    }
}

/// Whether a statement is `COPY … FROM stdin` (its rows follow it).
fn is_copy_from_stdin(head: &[Token], tail: &[Option<Token>; 2]) -> bool {
    let word =
        |t: Option<&Token>, w: &str| matches!(t, Some(Token::Word(x)) if x.eq_ignore_ascii_case(w));
    word(head.first(), "COPY") && word(tail[0].as_ref(), "FROM") && word(tail[1].as_ref(), "stdin")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `pg_dumpall` (PostgreSQL 17) of a server with databases `app`,
    /// `my db` and `a"b`, whose data holds text that looks like statements.
    const PG_DUMPALL: &str = r#"--
-- PostgreSQL database cluster dump
--

\restrict AbCdEf123

SET default_transaction_read_only = off;

SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;

--
-- Roles
--

CREATE ROLE app;
ALTER ROLE app WITH NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB LOGIN NOREPLICATION NOBYPASSRLS PASSWORD 'SCRAM-SHA-256$4096:abc';

--
-- Databases
--

--
-- Database "template1" dump
--

\connect template1

--
-- PostgreSQL database dump
--

SET statement_timeout = 0;
SELECT pg_catalog.set_config('search_path', '', false);

--
-- Database "app" dump
--

--
-- Name: app; Type: DATABASE; Schema: -; Owner: app
--

CREATE DATABASE app WITH TEMPLATE = template0 ENCODING = 'UTF8' LOCALE_PROVIDER = libc LOCALE = 'en_US.utf8';


ALTER DATABASE app OWNER TO app;

\connect app

CREATE FUNCTION public.f() RETURNS text
    LANGUAGE sql
    AS $_$
CREATE DATABASE in_function_body;
SELECT 'x'
$_$;

CREATE TABLE public.notes (
    id integer NOT NULL,
    body text
);

COMMENT ON TABLE public.notes IS 'a comment;
CREATE DATABASE in_a_string;
it''s still the string';

/* a block comment
CREATE DATABASE in_a_comment;
/* nested */
CREATE DATABASE still_in_the_comment;
*/

COPY public.lines (body) FROM stdin;
CREATE DATABASE victim
CREATE DATABASE "prod" WITH OWNER app;
\.

COPY public.notes (id, body) FROM stdin;
1	CREATE DATABASE victim
2	CREATE DATABASE "my db" WITH OWNER app;
3	\\.
4	CREATE DATABASE victim2;
\.

SELECT E'it\'s;
CREATE DATABASE in_an_escape_string;';

--
-- Database "my db" dump
--

CREATE DATABASE "my db" WITH TEMPLATE = template0 ENCODING = 'UTF8';


ALTER DATABASE "my db" OWNER TO app;

\connect -reuse-previous=on "dbname='my db'"

COPY public."odd
table" (id) FROM stdin;
CREATE DATABASE victim3;
\.

CREATE DATABASE "a""b" WITH TEMPLATE = template0 ENCODING = 'UTF8';

\connect -reuse-previous=on "dbname='a\"b'"

CREATE DATABASE "ünï cødé" WITH TEMPLATE = template0;

\connect postgres

\unrestrict AbCdEf123

--
-- PostgreSQL database cluster dump complete
--

"#;

    #[test]
    fn postgres_databases_come_from_statements_not_from_data() {
        let want = ["app", "my db", "a\"b", "ünï cødé"];
        assert_eq!(
            created_databases(Dialect::Postgres, PG_DUMPALL.as_bytes()),
            want
        );
        // The same, however the stream is cut (and with CRLF line ends).
        for size in [1, 2, 3, 7, 64, 4096] {
            let mut s = Scanner::new(Dialect::Postgres);
            for chunk in PG_DUMPALL.as_bytes().chunks(size) {
                s.feed(chunk);
            }
            assert_eq!(s.finish(), want, "chunks of {size}");
        }
        let crlf = PG_DUMPALL.replace('\n', "\r\n");
        assert_eq!(created_databases(Dialect::Postgres, crlf.as_bytes()), want);
    }

    #[test]
    fn a_long_copy_row_is_not_kept_and_cannot_end_the_block() {
        let mut s = Scanner::new(Dialect::Postgres);
        s.feed(b"COPY t (a) FROM stdin;\n");
        s.feed(b"\\.");
        for _ in 0..1000 {
            s.feed(b"xxxxxxxxxxxxxxxx");
        }
        assert!(s.pending.len() <= 4);
        s.feed(b"\nCREATE DATABASE victim;\n\\.\nCREATE DATABASE real;\n");
        assert_eq!(s.finish(), ["real"]);
    }

    /// A `mariadb-dump --databases` of `shop`, `my db` and ``a`b``, with
    /// routines and triggers, and values that look like statements (raw
    /// newlines, as a hand-edited or NO_BACKSLASH_ESCAPES-free dump may have).
    const MARIA_DUMP: &str = r#"/*M!999999\- enable the sandbox mode */
-- MariaDB dump 10.19  Distrib 10.11.6-MariaDB, for debian-linux-gnu (x86_64)
--
-- Host: localhost    Database: shop
/*!40101 SET @OLD_CHARACTER_SET_CLIENT=@@CHARACTER_SET_CLIENT */;
/*!40101 SET NAMES utf8mb4 */;

--
-- Current Database: `shop`
--

CREATE DATABASE /*!32312 IF NOT EXISTS*/ `shop` /*!40100 DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci */;

USE `shop`;

CREATE TABLE `notes` (
  `id` int(11) NOT NULL,
  `body` text DEFAULT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

LOCK TABLES `notes` WRITE;
INSERT INTO `notes` VALUES (1,'CREATE DATABASE victim;\nCREATE DATABASE `x`;'),(2,'it\'s;
CREATE DATABASE victim2;
'),(3,"dq \" ;
CREATE DATABASE victim3;
");
UNLOCK TABLES;

# a hash comment CREATE DATABASE no;
/*!50003 CREATE*/ /*!50017 DEFINER=`root`@`localhost`*/ /*!50003 TRIGGER t BEFORE INSERT ON notes FOR EACH ROW BEGIN
CREATE DATABASE in_a_trigger;
END */;

DELIMITER ;;
CREATE DEFINER=`root`@`localhost` PROCEDURE `p`()
BEGIN
SELECT 1;
CREATE DATABASE in_a_procedure;
END ;;
DELIMITER ;

--
-- Current Database: `my db`
--

CREATE DATABASE /*!32312 IF NOT EXISTS*/ `my db` /*!40100 DEFAULT CHARACTER SET utf8mb4 */;

USE `my db`;

CREATE DATABASE IF NOT EXISTS `a``b`;

CREATE DATABASE /*!32312 IF NOT EXISTS*/ `ünï cødé`;
/*!40101 SET CHARACTER_SET_CLIENT=@OLD_CHARACTER_SET_CLIENT */;
-- Dump completed on 2026-01-01  2:00:00
"#;

    #[test]
    fn mariadb_databases_come_from_statements_not_from_data() {
        let want = ["shop", "my db", "a`b", "ünï cødé"];
        assert_eq!(
            created_databases(Dialect::Maria, MARIA_DUMP.as_bytes()),
            want
        );
        for size in [1, 5, 300] {
            let mut s = Scanner::new(Dialect::Maria);
            for chunk in MARIA_DUMP.as_bytes().chunks(size) {
                s.feed(chunk);
            }
            assert_eq!(s.finish(), want, "chunks of {size}");
        }
    }

    #[test]
    fn quoted_names_are_read_exactly() {
        let pg = |s: &str| created_databases(Dialect::Postgres, s.as_bytes());
        assert_eq!(pg("CREATE DATABASE \"my db\";\n"), ["my db"]);
        assert_eq!(pg("CREATE DATABASE \"a\"\"b\" WITH OWNER x;\n"), ["a\"b"]);
        assert_eq!(pg("CREATE DATABASE \"x;y\";\n"), ["x;y"]);
        assert_eq!(pg("CREATE DATABASE \"line\nbreak\";\n"), ["line\nbreak"]);
        assert_eq!(pg("create database Shop;\n"), ["shop"]);
        let long = "x".repeat(MAX_IDENT + 1);
        assert!(pg(&format!("CREATE DATABASE \"{long}\";\n")).is_empty());
        let longest = "x".repeat(MAX_IDENT);
        assert_eq!(pg(&format!("CREATE DATABASE \"{longest}\";\n")), [longest]);
        // Unterminated, or no name: nothing.
        assert!(pg("CREATE DATABASE app").is_empty());
        assert!(pg("CREATE DATABASE;\n").is_empty());
        assert!(pg("CREATE TABLE app (a int);\n").is_empty());
        let maria = |s: &str| created_databases(Dialect::Maria, s.as_bytes());
        assert_eq!(maria("CREATE DATABASE `a``b`;\n"), ["a`b"]);
        assert_eq!(maria("CREATE DATABASE shop;\n"), ["shop"]);
        assert_eq!(maria("CREATE DATABASE `x;y`;\n"), ["x;y"]);
    }
}
