//! Exact row counts of a SQL dump, read from its stream as it is written:
//! the rows of each `COPY … FROM stdin;` block of `pg_dump`/`pg_dumpall`
//! (one line each, up to `\.`), the value tuples of each `INSERT INTO …
//! VALUES (…),(…);` of `mariadb-dump`/`mysqldump`. The restore drill compares
//! what it loaded with these, not with the server's estimates, which can be
//! off by any factor (InnoDB's after a bulk load).
//!
//! The dump is lexed as its client reads it — strings with their escapes,
//! quoted identifiers, dollar quotes, comments (MariaDB's `/*! … */` read as
//! the SQL they hold), psql's backslash commands, the MariaDB client's
//! `DELIMITER` — so that a value holding `),(`, a newline, `COPY … FROM
//! stdin;` or `\.` counts for nothing. Pure: fed in chunks cut anywhere, it
//! keeps at most one line (never a long `COPY` row).

use super::sql_text::{self, dollar_tag, is_ident_byte, trim_eol};
use super::stats::TableRows;
pub use crate::report::Counted;

/// Tokens kept from the start of a statement: `INSERT IGNORE INTO db . t VALUES`.
const HEAD: usize = 8;
/// The longest name kept (PostgreSQL's and MariaDB's are far shorter).
const MAX_NAME: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    /// An unquoted word (keyword or name).
    Word(String),
    /// A quoted name, unquoted.
    Name(String),
    Dot,
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Code,
    Str { quote: u8, backslash: bool },
    Ident { quote: u8 },
    Dollar(Vec<u8>),
    Block(u32),
    CopyData,
}

/// An `INSERT … VALUES` being counted.
#[derive(Debug)]
struct Insert {
    table: String,
    depth: u32,
    rows: i64,
    /// A token other than a tuple or a comma came after the tuples
    /// (`ON DUPLICATE KEY …`): nothing more is counted.
    done: bool,
}

/// Counts the rows of a SQL dump fed in chunks (see the module's docs).
#[derive(Debug)]
pub struct RowCounter {
    pg: bool,
    state: State,
    delimiter: Vec<u8>,
    /// The database the statements run in (`\connect`, `USE`).
    db: Option<String>,
    head: Vec<Tok>,
    tail: [Option<Tok>; 2],
    ident: Vec<u8>,
    /// Inside MariaDB's `/*! … */` (its text is SQL).
    versioned: bool,
    insert: Option<Insert>,
    /// The table whose `COPY` rows start on the next line, then are read.
    copy: Option<(String, i64)>,
    copy_next: bool,
    tables: TableRows,
    complete: bool,
    /// A `pg_dumpall`: only its own last comment ends it.
    cluster: bool,
    pending: Vec<u8>,
}

impl RowCounter {
    /// A counter for a dump read by `psql` (`pg`) or by the MariaDB/MySQL
    /// client, whose statements start in `database` (a `pg_dump` of one
    /// database names it nowhere).
    pub fn new(pg: bool, database: Option<&str>) -> RowCounter {
        RowCounter {
            pg,
            state: State::Code,
            delimiter: b";".to_vec(),
            db: database.map(str::to_string),
            head: Vec::new(),
            tail: [None, None],
            ident: Vec::new(),
            versioned: false,
            insert: None,
            copy: None,
            copy_next: false,
            tables: TableRows::new(),
            complete: false,
            cluster: false,
            pending: Vec::new(),
        }
    }

    /// Reads the next bytes of the dump.
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
        // A COPY row matters only if it is `\.`: a long one is not kept whole.
        if self.state == State::CopyData && self.pending.len() > 4 {
            self.pending.truncate(4);
        }
    }

    /// The counts of the whole stream (a last line without a newline read too).
    pub fn finish(mut self) -> Counted {
        if !self.pending.is_empty() {
            let last = std::mem::take(&mut self.pending);
            self.line(&last);
        }
        let ended = self.state == State::Code && self.head.is_empty() && !self.versioned;
        if let Some((table, rows)) = self.copy.take() {
            *self.tables.entry(table).or_insert(0) += rows;
        }
        self.end_insert();
        Counted {
            tables: self.tables,
            complete: self.complete && ended,
        }
    }

    fn line(&mut self, line: &[u8]) {
        if self.state == State::CopyData {
            let body = trim_eol(line);
            if body == b"\\." {
                self.state = State::Code;
                if let Some((table, rows)) = self.copy.take() {
                    *self.tables.entry(table).or_insert(0) += rows;
                }
            } else if (line.ends_with(b"\n") || !body.is_empty())
                && let Some((_, rows)) = &mut self.copy
            {
                *rows += 1;
            }
            return;
        }
        if self.state == State::Code
            && self.head.is_empty()
            && !self.pg
            && self.delimiter_line(line)
        {
            return;
        }
        let mut i = 0;
        while i < line.len() {
            i = match self.state.clone() {
                State::Code => self.code(line, i),
                State::Str { quote, backslash } => self.string(line, i, quote, backslash),
                State::Ident { quote } => self.quoted(line, i, quote),
                State::Dollar(tag) => match line[i..].windows(tag.len()).position(|w| w == tag) {
                    Some(at) => {
                        self.state = State::Code;
                        i + at + tag.len()
                    }
                    None => line.len(),
                },
                State::Block(depth) => self.block(line, i, depth),
                State::CopyData => line.len(),
            };
        }
        if std::mem::take(&mut self.copy_next) {
            self.state = State::CopyData;
        }
    }

    /// The MariaDB client's `DELIMITER x` line.
    fn delimiter_line(&mut self, line: &[u8]) -> bool {
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

    fn code(&mut self, line: &[u8], i: usize) -> usize {
        let b = line[i];
        let next = line.get(i + 1).copied();
        let pg = self.pg;
        if line[i..].starts_with(&self.delimiter) {
            self.end_statement();
            return i + self.delimiter.len();
        }
        match b {
            _ if b.is_ascii_whitespace() => i + 1,
            // psql's backslash commands take the rest of the line.
            b'\\' if pg => {
                self.meta(&line[i..]);
                line.len()
            }
            b'-' if next == Some(b'-')
                && (pg
                    || line
                        .get(i + 2)
                        .is_none_or(|c| c.is_ascii_whitespace() || c.is_ascii_control())) =>
            {
                self.comment(&line[i + 2..]);
                line.len()
            }
            b'#' if !pg => line.len(),
            b'*' if !pg && self.versioned && next == Some(b'/') => {
                self.versioned = false;
                i + 2
            }
            b'/' if next == Some(b'*') => {
                // MariaDB runs the text of `/*!NNNNN … */` and `/*M!NNNNN … */`.
                let rest = &line[i + 2..];
                let bang = match rest {
                    [b'!', ..] => Some(1),
                    [b'M', b'!', ..] => Some(2),
                    _ => None,
                };
                match bang {
                    // `/*M!999999\- enable the sandbox mode */`: a client command.
                    Some(2) if rest[2..].starts_with(b"999999") => {
                        self.state = State::Block(1);
                        i + 2
                    }
                    Some(n) if !pg => {
                        self.versioned = true;
                        let digits = rest[n..].iter().take_while(|c| c.is_ascii_digit()).count();
                        i + 2 + n + digits
                    }
                    _ => {
                        self.state = State::Block(1);
                        i + 2
                    }
                }
            }
            b'\'' => {
                // PostgreSQL's E'…' strings take backslash escapes.
                let e = pg
                    && i > 0
                    && matches!(line[i - 1], b'E' | b'e')
                    && matches!(&self.tail[1], Some(Tok::Word(w)) if w.eq_ignore_ascii_case("e"));
                self.push(Tok::Other);
                self.state = State::Str {
                    quote: b,
                    backslash: !pg || e,
                };
                i + 1
            }
            b'"' if !pg => {
                self.push(Tok::Other);
                self.state = State::Str {
                    quote: b,
                    backslash: true,
                };
                i + 1
            }
            b'"' if pg => self.open_quoted(b, i),
            b'`' if !pg => self.open_quoted(b, i),
            b'$' if pg && (i == 0 || !is_ident_byte(line[i - 1])) => match dollar_tag(&line[i..]) {
                Some(tag) => {
                    let end = i + tag.len();
                    self.push(Tok::Other);
                    self.state = State::Dollar(tag);
                    end
                }
                None => {
                    self.push(Tok::Other);
                    i + 1
                }
            },
            b'(' | b')' | b',' if self.insert.as_ref().is_some_and(|x| !x.done) => {
                self.tuple_byte(b);
                i + 1
            }
            b'.' => {
                self.push(Tok::Dot);
                i + 1
            }
            _ if is_ident_byte(b) => {
                let end = i + line[i..].iter().take_while(|&&c| is_ident_byte(c)).count();
                self.word(&line[i..end]);
                end
            }
            _ => {
                self.push(Tok::Other);
                i + 1
            }
        }
    }

    /// A parenthesis or comma of an `INSERT`'s values.
    fn tuple_byte(&mut self, b: u8) {
        let Some(ins) = &mut self.insert else { return };
        match b {
            b'(' => {
                if ins.depth == 0 {
                    ins.rows += 1;
                }
                ins.depth += 1;
            }
            b')' => ins.depth = ins.depth.saturating_sub(1),
            _ => {}
        }
        self.complete = false;
    }

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

    fn open_quoted(&mut self, quote: u8, i: usize) -> usize {
        self.ident.clear();
        self.state = State::Ident { quote };
        i + 1
    }

    /// Inside a quoted name: collects it.
    fn quoted(&mut self, line: &[u8], mut i: usize, quote: u8) -> usize {
        while i < line.len() {
            let c = line[i];
            if c == quote && line.get(i + 1) == Some(&quote) {
                i += 2;
            } else if c == quote {
                let t = if self.ident.len() <= MAX_NAME {
                    Tok::Name(String::from_utf8_lossy(&self.ident).into_owned())
                } else {
                    Tok::Other
                };
                self.push(t);
                self.state = State::Code;
                return i + 1;
            } else {
                i += 1;
            }
            if self.ident.len() <= MAX_NAME {
                self.ident.push(c);
            }
        }
        line.len()
    }

    fn block(&mut self, line: &[u8], mut i: usize, mut depth: u32) -> usize {
        while i < line.len() {
            if line[i..].starts_with(b"*/") {
                depth -= 1;
                i += 2;
                if depth == 0 {
                    self.state = State::Code;
                    return i;
                }
            } else if self.pg && line[i..].starts_with(b"/*") {
                depth += 1;
                i += 2;
            } else {
                i += 1;
            }
        }
        self.state = State::Block(depth);
        line.len()
    }

    /// A `--` comment's text: the tool's last comment marks a whole dump.
    fn comment(&mut self, text: &[u8]) {
        let text = trim_eol(text).trim_ascii();
        // A `pg_dumpall` holds one `pg_dump` per database, each with its end.
        if self.pg && text == b"PostgreSQL database cluster dump" {
            self.cluster = true;
        }
        let last: &[&[u8]] = if self.cluster {
            &[b"PostgreSQL database cluster dump complete"]
        } else if self.pg {
            &[b"PostgreSQL database dump complete"]
        } else {
            &[b"Dump completed"]
        };
        if self.head.is_empty() && last.iter().any(|l| text.starts_with(l)) {
            self.complete = true;
        }
    }

    /// A psql backslash command (`\connect db`, `\c db`): its database.
    fn meta(&mut self, cmd: &[u8]) {
        let args = psql_args(trim_eol(cmd));
        if !matches!(args.first().map(Vec::as_slice), Some(b"\\connect" | b"\\c")) {
            return;
        }
        let Some(target) = args[1..].iter().find(|a| !a.starts_with(b"-")) else {
            return;
        };
        let name = if target.contains(&b'=') {
            conninfo_dbname(target)
        } else {
            Some(target.clone())
        };
        if let Some(name) = name {
            self.db = Some(String::from_utf8_lossy(&name).into_owned());
        }
    }

    fn word(&mut self, w: &[u8]) {
        let values = w.eq_ignore_ascii_case(b"VALUES") || w.eq_ignore_ascii_case(b"VALUE");
        let keep = self.head.len() < HEAD
            || [b"FROM".as_slice(), b"stdin", b"E"]
                .iter()
                .any(|k| w.eq_ignore_ascii_case(k));
        self.push(if keep {
            Tok::Word(String::from_utf8_lossy(w).into_owned())
        } else {
            Tok::Other
        });
        if values && !self.pg && self.insert.is_none() {
            self.start_insert();
        }
    }

    /// `VALUES` came: counts tuples if the statement is `INSERT [IGNORE]
    /// INTO <table> …` or `REPLACE INTO <table> …`.
    fn start_insert(&mut self) {
        let h = &self.head;
        let mut at = match h.first() {
            Some(t) if is_word(t, "INSERT") || is_word(t, "REPLACE") => 1,
            _ => return,
        };
        if h.get(at).is_some_and(|t| is_word(t, "IGNORE")) {
            at += 1;
        }
        if !h.get(at).is_some_and(|t| is_word(t, "INTO")) {
            return;
        }
        let Some(name) = qualified(&h[at + 1..], false) else {
            return;
        };
        let table = match (name.len(), &self.db) {
            (1, Some(db)) => format!("{db}.{}", name[0]),
            _ => name.join("."),
        };
        self.insert = Some(Insert {
            table,
            depth: 0,
            rows: 0,
            done: false,
        });
    }

    /// A token; one at depth 0 after an `INSERT`'s tuples (`ON DUPLICATE
    /// KEY …`) ends them.
    fn push(&mut self, t: Tok) {
        self.complete = false;
        if let Some(ins) = &mut self.insert
            && ins.depth == 0
        {
            ins.done = true;
        }
        if self.head.len() < HEAD {
            self.head.push(t.clone());
        }
        self.tail = [self.tail[1].take(), Some(t)];
    }

    fn end_insert(&mut self) {
        if let Some(ins) = self.insert.take() {
            *self.tables.entry(ins.table).or_insert(0) += ins.rows;
        }
    }

    fn end_statement(&mut self) {
        self.end_insert();
        let h = &self.head;
        if self.pg
            && h.first().is_some_and(|t| is_word(t, "COPY"))
            && self.tail[0].as_ref().is_some_and(|t| is_word(t, "FROM"))
            && self.tail[1].as_ref().is_some_and(|t| is_word(t, "stdin"))
            && let Some(name) = qualified(&h[1..], true)
        {
            let db = self.db.clone().unwrap_or_default();
            let table = match name.len() {
                1 => format!("{db}.public.{}", name[0]),
                _ => format!("{db}.{}", name.join(".")),
            };
            self.copy = Some((table, 0));
            self.copy_next = true;
        }
        if !self.pg
            && h.len() == 2
            && is_word(&h[0], "USE")
            && let Some(name) = qualified(&h[1..], false)
        {
            self.db = Some(name.join("."));
        }
        self.head.clear();
        self.tail = [None, None];
    }
}

fn is_word(t: &Tok, w: &str) -> bool {
    matches!(t, Tok::Word(x) if x.eq_ignore_ascii_case(w))
}

/// The names of `a`, `a.b` or `a.b.c` at the start of `toks`. PostgreSQL
/// folds an unquoted name to lower case (`pg_dump` quotes any other).
fn qualified(toks: &[Tok], fold: bool) -> Option<Vec<String>> {
    let name = |t: &Tok| match t {
        Tok::Name(n) => Some(n.clone()),
        Tok::Word(w) if fold => Some(w.to_ascii_lowercase()),
        Tok::Word(w) => Some(w.clone()),
        _ => None,
    };
    let mut out = vec![name(toks.first()?)?];
    let mut rest = &toks[1..];
    while let [Tok::Dot, t, tail @ ..] = rest {
        out.push(name(t)?);
        rest = tail;
    }
    Some(out)
}

/// A psql command line split into arguments: whitespace apart, `"…"` (a
/// doubled `"` inside is one) and `'…'` (`\` escapes) quoted.
fn psql_args(line: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < line.len() {
        if line[i].is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let mut arg = Vec::new();
        while i < line.len() && !line[i].is_ascii_whitespace() {
            match line[i] {
                q @ (b'"' | b'\'') => {
                    i += 1;
                    while i < line.len() {
                        let c = line[i];
                        if q == b'\'' && c == b'\\' && i + 1 < line.len() {
                            arg.push(line[i + 1]);
                            i += 2;
                        } else if c == q && q == b'"' && line.get(i + 1) == Some(&q) {
                            arg.push(q);
                            i += 2;
                        } else if c == q {
                            i += 1;
                            break;
                        } else {
                            arg.push(c);
                            i += 1;
                        }
                    }
                }
                c => {
                    arg.push(c);
                    i += 1;
                }
            }
        }
        out.push(arg);
    }
    out
}

/// `dbname=…` of a libpq connection string (`'…'` with `\` escapes, or bare).
fn conninfo_dbname(s: &[u8]) -> Option<Vec<u8>> {
    let mut i = 0;
    while i < s.len() {
        while i < s.len() && s[i].is_ascii_whitespace() {
            i += 1;
        }
        let key_end = i + s[i..].iter().position(|&c| c == b'=')?;
        let key = s[i..key_end].trim_ascii();
        i = key_end + 1;
        while i < s.len() && s[i].is_ascii_whitespace() {
            i += 1;
        }
        let mut value = Vec::new();
        if s.get(i) == Some(&b'\'') {
            i += 1;
            while i < s.len() && s[i] != b'\'' {
                if s[i] == b'\\' && i + 1 < s.len() {
                    i += 1;
                }
                value.push(s[i]);
                i += 1;
            }
            i += 1;
        } else {
            while i < s.len() && !s[i].is_ascii_whitespace() {
                if s[i] == b'\\' && i + 1 < s.len() {
                    i += 1;
                }
                value.push(s[i]);
                i += 1;
            }
        }
        if key == b"dbname" {
            return Some(value);
        }
    }
    None
}

/// Counts the rows of a whole dump held in memory.
pub fn count(pg: bool, database: Option<&str>, dump: &[u8]) -> Counted {
    let mut c = RowCounter::new(pg, database);
    c.feed(dump);
    c.finish()
}

#[cfg(test)]
mod tests;
