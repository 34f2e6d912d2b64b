//! Lucene / Kibana query-string syntax into a [`Query`], by hand-written recursive descent.
//!
//! ```text
//! query     := sequence?                          (empty or blank: every document)
//! sequence  := item ( operator? item )*           (a missing operator is the default one)
//! operator  := AND | && | OR | ||
//! item      := ( + | - )? unary
//! unary     := ( NOT | ! ) unary | primary
//! primary   := ( sequence ) | field : value | _exists_ : field | "phrase" | word
//! value     := ( sequence ) | "phrase" | range | compare | word
//! range     := ( [ | { ) bound TO bound ( ] | } )  (bound: word, "phrase" or * for none)
//! compare   := ( >= | > | <= | < ) ( word | "phrase" )
//! ```
//!
//! # Meaning
//!
//! - `NOT` binds tightest, then `AND`, then `OR` (operators are upper case only, as in
//!   Lucene; `and`/`or`/`not` are words). `a OR b` is `should [a, b]`, `a AND b` is
//!   `must [a, b]`, `NOT a` is `must [MatchAll], must_not [a]`.
//! - Two clauses with no operator between them are joined by the default operator (`OR`
//!   for [`parse`], chosen with [`parse_with`]). `NOT` written right after a clause with no
//!   operator (`error NOT timeout`) reads as `-` (`error -timeout`), as Lucene and
//!   Elasticsearch do; after an explicit operator it is the boolean negation (`a OR NOT b`
//!   is "a, or anything but b").
//! - `+a` and `-a` are Lucene's modifiers: the clause goes to `must` / `must_not` of the
//!   enclosing sequence (`+a -b c` is `must [a], must_not [b], should [c]`). Within an
//!   `AND` chain `+` changes nothing and `-` means `NOT`.
//! - `field:(a OR b)` gives the field to every clause inside without one; a clause inside
//!   with its own `field:` keeps it.
//! - Trivially nested booleans are flattened (`a OR (b OR c)` is `should [a, b, c]`) and a
//!   single clause is returned as itself, never wrapped.
//! - `field:*` and `_exists_:field` are [`Query::Exists`], so is a range with no bound
//!   (`field:[* TO *]`). A bare `*` (or `*:*`) is [`Query::MatchAll`]; `*:value` is `value`
//!   on the default fields.
//! - A value with an unescaped `*` or `?` is a [`Query::Wildcard`] (escaped `\*`, `\?` and
//!   `\\` stay escaped in the pattern, other escapes are resolved).
//!
//! # Where a value ends
//!
//! - A word (a bare term or the value after `field:`) ends at whitespace or at one of
//!   `( ) " : [ ] { }`; `\` escapes any character. Inside a word `-`, `+`, `!`, `.`, `/`,
//!   `&`, `|`, `<` and `>` are ordinary characters (`+`, `-` and `!` are modifiers only at
//!   the start of a clause). A colon inside a value must be quoted or escaped
//!   (`host:"a:b"`, `host:a\:b`), otherwise it is an error.
//! - A range bound (`[a TO b]`) ends at whitespace, `]` or `}`: colons and dashes need no
//!   escaping there (`@timestamp:[2026-11-01T00:00:00Z TO now-1h]`).
//! - The value of a comparison (`field:>=v`) ends at whitespace or an unescaped `)`:
//!   `@timestamp:>=2026-11-23T10:00:00Z` needs no quoting.
//! - `~` (fuzzy, proximity), `^` (boost) and a word starting with `/` (regular expression)
//!   are not supported and are syntax errors unless escaped or quoted.
//!
//! # Limits
//!
//! At most [`MAX_QUERY_LEN`] bytes, [`MAX_DEPTH`] nested parentheses or `NOT`s and
//! [`MAX_CLAUSES`] clauses.

use crate::ast::{BoolQuery, Operator, Query, RangeBound, Span};
use crate::error::QueryError;

/// Longest accepted query string, in bytes.
pub const MAX_QUERY_LEN: usize = 16 * 1024;
/// Deepest accepted nesting of parentheses and `NOT`s.
pub const MAX_DEPTH: usize = 32;
/// Most clauses (words, phrases, ranges, ...) in one query string.
pub const MAX_CLAUSES: usize = 1024;

/// Parses a Lucene query string, joining clauses written without an operator with `OR`
/// (Lucene's and Elasticsearch's default).
///
/// An empty or blank query is [`Query::MatchAll`]. Errors are [`QueryError::Syntax`] with
/// the byte offset of the problem.
pub fn parse(input: &str) -> Result<Query, QueryError> {
    parse_with(input, Operator::Or)
}

/// Parses a Lucene query string, joining clauses written without an operator with
/// `default_operator` (Elasticsearch's `default_operator` parameter). The operator also
/// combines the words of each [`Query::Match`].
pub fn parse_with(input: &str, default_operator: Operator) -> Result<Query, QueryError> {
    if input.len() > MAX_QUERY_LEN {
        // The last character boundary within the limit, so that callers can slice there.
        let position = (0..=MAX_QUERY_LEN)
            .rev()
            .find(|&position| input.is_char_boundary(position))
            .unwrap_or(0);
        return Err(syntax(
            position,
            format!(
                "the query is {} bytes long; the limit is {MAX_QUERY_LEN} bytes",
                input.len()
            ),
        ));
    }
    Parser {
        input,
        pos: 0,
        default_operator,
        depth: 0,
        clauses: 0,
    }
    .query()
}

fn syntax(position: usize, message: impl Into<String>) -> QueryError {
    QueryError::Syntax {
        position,
        message: message.into(),
    }
}

/// A boolean operator keyword.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Keyword {
    And,
    Or,
    Not,
}

/// Where a clause goes in the enclosing boolean.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Occur {
    /// No modifier: decided by the operators around it.
    Default,
    /// `+`.
    Must,
    /// `-` (or `NOT` read as `-`).
    MustNot,
}

/// One clause of a sequence with its modifier.
struct Item {
    occur: Occur,
    query: Query,
}

/// Which characters end a word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WordMode {
    /// A term or a field name: whitespace and `( ) " : [ ] { }`.
    Term,
    /// A range bound: whitespace, `]` and `}`.
    RangeBound,
    /// The value of `>=` and friends: whitespace and `)`.
    Comparison,
}

impl WordMode {
    fn ends_at(self, c: char) -> bool {
        c.is_whitespace()
            || match self {
                Self::Term => matches!(c, '(' | ')' | '"' | ':' | '[' | ']' | '{' | '}'),
                Self::RangeBound => matches!(c, ']' | '}'),
                Self::Comparison => c == ')',
            }
    }
}

/// A run of characters as scanned.
struct Word<'a> {
    /// As written, escapes included.
    raw: &'a str,
    /// Escapes resolved.
    text: String,
    /// Escapes resolved except `\*`, `\?` and `\\` (a [`Query::Wildcard`] pattern).
    pattern: String,
    /// Has an unescaped `*` or `?`.
    wildcard: bool,
    /// Has a backslash escape.
    escaped: bool,
}

impl Word<'_> {
    /// An unescaped lone `*`.
    fn is_star(&self) -> bool {
        self.raw == "*"
    }
}

/// A comparison operator of `field:>=value`.
#[derive(Debug, Clone, Copy)]
enum Comparison {
    Gt,
    Ge,
    Lt,
    Le,
}

impl Comparison {
    fn text(self) -> &'static str {
        match self {
            Self::Gt => ">",
            Self::Ge => ">=",
            Self::Lt => "<",
            Self::Le => "<=",
        }
    }
}

struct Parser<'a> {
    input: &'a str,
    pos: usize,
    default_operator: Operator,
    depth: usize,
    clauses: usize,
}

impl<'a> Parser<'a> {
    // ----- scanning -----

    fn rest(&self) -> &'a str {
        &self.input[self.pos..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn skip_ws(&mut self) {
        let rest = self.rest();
        self.pos += rest.len() - rest.trim_start().len();
    }

    /// The operator keyword at the cursor, with its spelling.
    fn keyword(&self) -> Option<(Keyword, &'static str)> {
        const KEYWORDS: [(&str, Keyword); 6] = [
            ("&&", Keyword::And),
            ("||", Keyword::Or),
            ("!", Keyword::Not),
            ("AND", Keyword::And),
            ("OR", Keyword::Or),
            ("NOT", Keyword::Not),
        ];
        let rest = self.rest();
        KEYWORDS.into_iter().find_map(|(written, keyword)| {
            let after = rest.strip_prefix(written)?;
            let symbolic = !written.starts_with(|c: char| c.is_ascii_alphabetic());
            let bounded = after
                .chars()
                .next()
                .is_none_or(|c| c.is_whitespace() || matches!(c, '(' | ')' | '"'));
            (symbolic || bounded).then_some((keyword, written))
        })
    }

    /// True when no clause can start here: the end, `)` or a binary operator.
    fn at_clause_end(&self) -> bool {
        matches!(self.peek(), None | Some(')'))
            || matches!(self.keyword(), Some((Keyword::And | Keyword::Or, _)))
    }

    /// What is at the cursor, for messages.
    fn found(&self) -> String {
        if let Some((_, written)) = self.keyword() {
            return format!("the operator `{written}`");
        }
        match self.peek() {
            None => "the end of the query".to_owned(),
            Some(c) => format!("`{c}`"),
        }
    }

    /// Scans a word, resolving escapes. May be empty when the cursor is on a character
    /// that ends words in `mode`.
    fn word(&mut self, mode: WordMode) -> Result<Word<'a>, QueryError> {
        let start = self.pos;
        let mut word = Word {
            raw: "",
            text: String::new(),
            pattern: String::new(),
            wildcard: false,
            escaped: false,
        };
        while let Some(c) = self.peek() {
            if mode.ends_at(c) {
                break;
            }
            if c == '\\' {
                self.escape(&mut word)?;
                continue;
            }
            if mode == WordMode::Term {
                self.check_supported(c, self.pos == start)?;
                word.wildcard |= matches!(c, '*' | '?');
            }
            word.text.push(c);
            word.pattern.push(c);
            self.pos += c.len_utf8();
        }
        word.raw = &self.input[start..self.pos];
        Ok(word)
    }

    /// Consumes `\x` into `word`.
    fn escape(&mut self, word: &mut Word<'a>) -> Result<(), QueryError> {
        let backslash = self.pos;
        self.pos += 1;
        let Some(c) = self.peek() else {
            return Err(syntax(
                backslash,
                "a `\\` at the end of the query escapes nothing; write `\\\\` for a backslash",
            ));
        };
        self.pos += c.len_utf8();
        word.escaped = true;
        word.text.push(c);
        if matches!(c, '*' | '?' | '\\') {
            word.pattern.push('\\');
        }
        word.pattern.push(c);
        Ok(())
    }

    /// Rejects the Lucene features Caravan does not support.
    fn check_supported(&self, c: char, word_start: bool) -> Result<(), QueryError> {
        let message = match c {
            '~' => {
                "fuzzy and proximity searches (`~`) are not supported; escape it (`\\~`) or quote \
                 the value to search for it"
            }
            '^' => {
                "boosts (`^`) are not supported; escape it (`\\^`) or quote the value to search \
                 for it"
            }
            '/' if word_start => {
                "regular expressions (`/.../`) are not supported; escape the `/` (`\\/`) or quote \
                 the value to search for it"
            }
            _ => return Ok(()),
        };
        Err(syntax(self.pos, message))
    }

    /// Scans a quoted string at the cursor (on the `"`), resolving escapes.
    fn quoted(&mut self) -> Result<String, QueryError> {
        let quote = self.pos;
        self.pos += 1;
        let mut text = String::new();
        let mut chars = self.rest().char_indices();
        while let Some((offset, c)) = chars.next() {
            match c {
                '"' => {
                    self.pos += offset + 1;
                    return Ok(text);
                }
                '\\' => match chars.next() {
                    Some((_, escaped)) => text.push(escaped),
                    None => break,
                },
                _ => text.push(c),
            }
        }
        Err(syntax(
            quote,
            format!(
                "unterminated quoted phrase starting at position {quote}: expected a closing `\"`"
            ),
        ))
    }

    fn count_clause(&mut self, at: usize) -> Result<(), QueryError> {
        self.clauses += 1;
        if self.clauses > MAX_CLAUSES {
            return Err(syntax(
                at,
                format!("the query has more than {MAX_CLAUSES} clauses"),
            ));
        }
        Ok(())
    }

    fn enter(&mut self, at: usize, what: &str) -> Result<(), QueryError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(syntax(
                at,
                format!("{what} nest deeper than {MAX_DEPTH} levels"),
            ));
        }
        Ok(())
    }

    fn span(&self, start: usize) -> Span {
        Span {
            start,
            end: self.pos,
        }
    }

    // ----- grammar -----

    fn query(mut self) -> Result<Query, QueryError> {
        self.skip_ws();
        if self.peek().is_none() {
            return Ok(Query::MatchAll);
        }
        let query = self.sequence(None)?;
        if self.peek() == Some(')') {
            return Err(syntax(self.pos, "unexpected `)` without a matching `(`"));
        }
        Ok(query)
    }

    /// Clauses and operators up to the end or a `)` (not consumed). `field` is the field
    /// of an enclosing `field:( ... )`.
    fn sequence(&mut self, field: Option<&str>) -> Result<Query, QueryError> {
        self.skip_ws();
        if let Some((Keyword::And | Keyword::Or, written)) = self.keyword() {
            return Err(syntax(
                self.pos,
                format!("`{written}` needs a clause before it"),
            ));
        }
        let mut groups: Vec<Vec<Item>> = Vec::new();
        let mut group = Vec::new();
        let mut not_as_minus = false;
        loop {
            group.push(self.item(field, not_as_minus)?);
            self.skip_ws();
            if matches!(self.peek(), None | Some(')')) {
                break;
            }
            let operator = match self.keyword() {
                Some((Keyword::Not, _)) => {
                    not_as_minus = true;
                    self.default_operator
                }
                Some((keyword, written)) => {
                    not_as_minus = false;
                    self.binary_operator(written)?;
                    if keyword == Keyword::And {
                        Operator::And
                    } else {
                        Operator::Or
                    }
                }
                None => {
                    not_as_minus = false;
                    self.default_operator
                }
            };
            if operator == Operator::Or {
                groups.push(std::mem::take(&mut group));
            }
        }
        groups.push(group);
        Ok(disjunction(groups))
    }

    /// Consumes `AND`/`OR` and checks that a clause follows.
    fn binary_operator(&mut self, written: &str) -> Result<(), QueryError> {
        let at = self.pos;
        self.pos += written.len();
        self.operand_follows(written, at)
    }

    /// Checks that a clause follows the operator or modifier `written` at `at`.
    fn operand_follows(&mut self, written: &str, at: usize) -> Result<(), QueryError> {
        self.skip_ws();
        if self.at_clause_end() {
            return Err(syntax(
                at,
                format!(
                    "expected a clause after `{written}`, found {}",
                    self.found()
                ),
            ));
        }
        Ok(())
    }

    /// A clause with its `+`/`-` modifier; `not_as_minus`: the cursor is on a `NOT` that
    /// followed a clause with no operator, read as `-`.
    fn item(&mut self, field: Option<&str>, not_as_minus: bool) -> Result<Item, QueryError> {
        self.skip_ws();
        let at = self.pos;
        let (occur, written) = if not_as_minus {
            let written = self.keyword().map_or("NOT", |(_, written)| written);
            (Occur::MustNot, written)
        } else {
            match self.peek() {
                Some('+') => (Occur::Must, "+"),
                Some('-') => (Occur::MustNot, "-"),
                _ => {
                    return Ok(Item {
                        occur: Occur::Default,
                        query: self.unary(field)?,
                    });
                }
            }
        };
        self.pos += written.len();
        self.operand_follows(written, at)?;
        Ok(Item {
            occur,
            query: self.unary(field)?,
        })
    }

    /// `NOT`s then a primary clause.
    fn unary(&mut self, field: Option<&str>) -> Result<Query, QueryError> {
        self.skip_ws();
        let at = self.pos;
        if let Some((Keyword::Not, written)) = self.keyword() {
            self.enter(at, "`NOT`s")?;
            self.pos += written.len();
            self.operand_follows(written, at)?;
            let operand = self.unary(field)?;
            self.depth -= 1;
            return Ok(negate(operand));
        }
        if let Some(c @ ('+' | '-')) = self.peek() {
            return Err(syntax(
                at,
                format!("unexpected `{c}`: a clause takes one `+`, `-` or `NOT`"),
            ));
        }
        self.primary(field)
    }

    fn primary(&mut self, field: Option<&str>) -> Result<Query, QueryError> {
        let start = self.pos;
        match self.peek() {
            Some('(') => return self.group(field),
            Some(':') => {
                return Err(syntax(start, "expected a field name before `:`"));
            }
            Some('[' | '{' | '"') => return self.operand(field, start),
            Some('<' | '>') if field.is_some() => return self.operand(field, start),
            _ => {}
        }
        let word = self.word(WordMode::Term)?;
        if word.raw.is_empty() {
            return Err(syntax(start, format!("unexpected {}", self.found())));
        }
        if self.peek() == Some(':') {
            return self.field_clause(&word, start);
        }
        self.term(field, &word, start)
    }

    /// `( sequence )` at the cursor.
    fn group(&mut self, field: Option<&str>) -> Result<Query, QueryError> {
        let open = self.pos;
        self.enter(open, "parentheses")?;
        self.pos += 1;
        self.skip_ws();
        if self.peek() == Some(')') {
            return Err(syntax(
                self.pos,
                "empty parentheses: expected a clause before `)`",
            ));
        }
        if self.peek().is_none() {
            return Err(unclosed_paren(open));
        }
        let query = self.sequence(field)?;
        if self.peek() != Some(')') {
            return Err(unclosed_paren(open));
        }
        self.pos += 1;
        self.depth -= 1;
        Ok(query)
    }

    /// `name:` with the cursor on the colon.
    fn field_clause(&mut self, name: &Word<'_>, start: usize) -> Result<Query, QueryError> {
        if !name.is_star() {
            check_field_name(name, start)?;
        }
        self.pos += 1;
        if name.raw == "_exists_" {
            return self.exists(start);
        }
        let field = (!name.is_star()).then_some(name.raw);
        self.skip_ws();
        let at = self.pos;
        if self.at_clause_end() || matches!(self.keyword(), Some((Keyword::Not, _))) {
            let found = match self.keyword() {
                Some((_, written)) => {
                    format!(", found the operator `{written}` (quote it to search for the word)")
                }
                None => String::new(),
            };
            return Err(syntax(
                at,
                format!("expected a value after `{}:`{found}", name.raw),
            ));
        }
        match self.peek() {
            Some('(') => self.group(field),
            Some('[' | '{' | '"' | '<' | '>') => self.operand(field, start),
            _ => {
                let word = self.word(WordMode::Term)?;
                if word.raw.is_empty() {
                    return Err(syntax(at, format!("unexpected {}", self.found())));
                }
                if self.peek() == Some(':') {
                    return Err(syntax(
                        self.pos,
                        format!(
                            "unexpected `:` in the value of `{}:`; quote the value or escape the \
                             colon (`\\:`)",
                            name.raw
                        ),
                    ));
                }
                if name.is_star() && word.is_star() {
                    return Ok(Query::MatchAll);
                }
                self.term(field, &word, start)
            }
        }
    }

    /// A phrase, range or comparison at the cursor; `start` is where the clause (with its
    /// `field:`) began.
    fn operand(&mut self, field: Option<&str>, start: usize) -> Result<Query, QueryError> {
        let at = self.pos;
        self.count_clause(start)?;
        if self.peek() == Some('"') {
            let text = self.quoted()?;
            return Ok(Query::Phrase {
                field: field.map(str::to_owned),
                text,
                span: self.span(start),
            });
        }
        let Some(field) = field else {
            return Err(syntax(
                at,
                "a range needs a field, e.g. `status:[200 TO 299]` or `status:>=500`",
            ));
        };
        let (lower, upper) = if matches!(self.peek(), Some('[' | '{')) {
            self.range()?
        } else {
            self.comparison()?
        };
        Ok(range_query(field, lower, upper, self.span(start)))
    }

    /// `[a TO b]` (any bracket mix) at the cursor.
    fn range(&mut self) -> Result<(RangeBound, RangeBound), QueryError> {
        let open = self.pos;
        let lower_included = self.peek() == Some('[');
        self.pos += 1;
        self.skip_ws();
        let lower = self.range_bound(open, "a lower bound")?;
        if lower.as_deref() == Some("TO") {
            return Err(syntax(
                open + 1,
                "expected a lower bound before `TO` (`*` for none)",
            ));
        }
        self.skip_ws();
        let to = self.pos;
        if self.peek().is_none() {
            return Err(unclosed_range(open));
        }
        let word = self.word(WordMode::RangeBound)?;
        if word.raw != "TO" {
            self.pos = to;
            return Err(syntax(
                to,
                format!(
                    "expected `TO` after the lower bound, found {}",
                    self.found()
                ),
            ));
        }
        self.skip_ws();
        let upper = self.range_bound(open, "an upper bound after `TO`")?;
        self.skip_ws();
        let upper_included = match self.peek() {
            Some(']') => true,
            Some('}') => false,
            None => return Err(unclosed_range(open)),
            Some(c) => {
                return Err(syntax(
                    self.pos,
                    format!("expected `]` or `}}` to close the range, found `{c}`"),
                ));
            }
        };
        self.pos += 1;
        Ok((bound(lower, lower_included), bound(upper, upper_included)))
    }

    /// A range bound; `None` for `*`.
    fn range_bound(&mut self, open: usize, what: &str) -> Result<Option<String>, QueryError> {
        match self.peek() {
            None => Err(unclosed_range(open)),
            Some(']' | '}') => Err(syntax(
                self.pos,
                format!("expected {what} (`*` for none), found {}", self.found()),
            )),
            Some('"') => self.quoted().map(Some),
            Some(_) => {
                let word = self.word(WordMode::RangeBound)?;
                Ok((!word.is_star()).then_some(word.text))
            }
        }
    }

    /// `>=v`, `>v`, `<=v` or `<v` at the cursor.
    fn comparison(&mut self) -> Result<(RangeBound, RangeBound), QueryError> {
        let rest = self.rest();
        let comparison = if rest.starts_with(">=") {
            Comparison::Ge
        } else if rest.starts_with("<=") {
            Comparison::Le
        } else if rest.starts_with('>') {
            Comparison::Gt
        } else {
            Comparison::Lt
        };
        self.pos += comparison.text().len();
        self.skip_ws();
        if self.at_clause_end() || matches!(self.keyword(), Some((Keyword::Not, _))) {
            return Err(syntax(
                self.pos,
                format!(
                    "expected a value after `{}`, found {}",
                    comparison.text(),
                    self.found()
                ),
            ));
        }
        let value = if self.peek() == Some('"') {
            Some(self.quoted()?)
        } else {
            let word = self.word(WordMode::Comparison)?;
            (!word.is_star()).then_some(word.text)
        };
        let (lower, upper) = match comparison {
            Comparison::Gt => (bound(value, false), RangeBound::Unbounded),
            Comparison::Ge => (bound(value, true), RangeBound::Unbounded),
            Comparison::Lt => (RangeBound::Unbounded, bound(value, false)),
            Comparison::Le => (RangeBound::Unbounded, bound(value, true)),
        };
        Ok((lower, upper))
    }

    /// `_exists_:` seen; the field name is at the cursor.
    fn exists(&mut self, start: usize) -> Result<Query, QueryError> {
        self.skip_ws();
        let at = self.pos;
        let name = self.word(WordMode::Term)?;
        if name.raw.is_empty() {
            return Err(syntax(
                at,
                format!(
                    "expected a field name after `_exists_:`, found {}",
                    self.found()
                ),
            ));
        }
        check_field_name(&name, at)?;
        self.count_clause(start)?;
        Ok(Query::Exists {
            field: name.raw.to_owned(),
            span: self.span(start),
        })
    }

    /// A word as a clause: `*`, a wildcard pattern or a value to match.
    fn term(
        &mut self,
        field: Option<&str>,
        word: &Word<'_>,
        start: usize,
    ) -> Result<Query, QueryError> {
        self.count_clause(start)?;
        let span = self.span(start);
        let field = field.map(str::to_owned);
        Ok(match field {
            None if word.is_star() => Query::MatchAll,
            Some(field) if word.is_star() => Query::Exists { field, span },
            field if word.wildcard => Query::Wildcard {
                field,
                pattern: word.pattern.clone(),
                span,
            },
            field => Query::Match {
                field,
                value: word.text.clone(),
                operator: self.default_operator,
                span,
            },
        })
    }
}

fn unclosed_paren(open: usize) -> QueryError {
    syntax(open, "unclosed `(`: expected a matching `)`")
}

fn unclosed_range(open: usize) -> QueryError {
    syntax(
        open,
        "unclosed range: expected `]` or `}` after the upper bound",
    )
}

/// Field names are letters, digits and `_ . @ - /`, unescaped.
fn check_field_name(name: &Word<'_>, at: usize) -> Result<(), QueryError> {
    let valid = !name.raw.is_empty()
        && !name.escaped
        && name
            .raw
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '_' | '.' | '@' | '-' | '/'));
    if valid {
        return Ok(());
    }
    Err(syntax(
        at,
        format!(
            "invalid field name `{}`: field names may contain letters, digits, `_`, `.`, `@`, \
             `-` and `/`",
            name.raw
        ),
    ))
}

fn bound(value: Option<String>, included: bool) -> RangeBound {
    match value {
        None => RangeBound::Unbounded,
        Some(value) if included => RangeBound::Included(value),
        Some(value) => RangeBound::Excluded(value),
    }
}

/// A range, or [`Query::Exists`] when neither side is bounded.
fn range_query(field: &str, lower: RangeBound, upper: RangeBound, span: Span) -> Query {
    let field = field.to_owned();
    if lower == RangeBound::Unbounded && upper == RangeBound::Unbounded {
        return Query::Exists { field, span };
    }
    Query::Range {
        field,
        lower,
        upper,
        span,
    }
}

// ----- building booleans -----

/// `must [MatchAll], must_not [query]` (`NOT (a OR b)`: `must_not [a, b]`); `NOT NOT a` is
/// `a`.
fn negate(query: Query) -> Query {
    match query {
        Query::Bool(mut negation) if is_negation(&negation) => {
            negation.must_not.pop().unwrap_or(Query::MatchAll)
        }
        query => {
            let mut negation = BoolQuery {
                must: vec![Query::MatchAll],
                ..BoolQuery::default()
            };
            add_must_not(&mut negation, query);
            Query::Bool(negation)
        }
    }
}

fn is_negation(bool_query: &BoolQuery) -> bool {
    bool_query.must == [Query::MatchAll]
        && bool_query.must_not.len() == 1
        && bool_query.filter.is_empty()
        && bool_query.should.is_empty()
        && bool_query.minimum_should_match.is_none()
}

/// Only `must`, `filter` and `must_not`: can merge into an enclosing conjunction.
fn is_conjunction(bool_query: &BoolQuery) -> bool {
    bool_query.should.is_empty() && bool_query.minimum_should_match.is_none()
}

/// Only `should`: can merge into an enclosing disjunction.
fn is_disjunction(bool_query: &BoolQuery) -> bool {
    bool_query.must.is_empty()
        && bool_query.filter.is_empty()
        && bool_query.must_not.is_empty()
        && bool_query.minimum_should_match.is_none()
}

fn add_must(target: &mut BoolQuery, query: Query) {
    match query {
        Query::Bool(inner) if is_conjunction(&inner) => {
            target.must.extend(inner.must);
            target.filter.extend(inner.filter);
            target.must_not.extend(inner.must_not);
        }
        query => target.must.push(query),
    }
}

/// `NOT (a OR b)` is `NOT a, NOT b`.
fn add_must_not(target: &mut BoolQuery, query: Query) {
    match query {
        Query::Bool(inner) if is_disjunction(&inner) => target.must_not.extend(inner.should),
        query => target.must_not.push(query),
    }
}

fn add_should(target: &mut BoolQuery, query: Query) {
    match query {
        Query::Bool(inner) if is_disjunction(&inner) => target.should.extend(inner.should),
        query => target.should.push(query),
    }
}

/// Clauses joined by `AND`.
fn conjunction(items: Vec<Item>) -> Query {
    let mut target = BoolQuery::default();
    for item in items {
        match item.occur {
            Occur::MustNot => add_must_not(&mut target, item.query),
            Occur::Default | Occur::Must => add_must(&mut target, item.query),
        }
    }
    finish(target)
}

/// `AND` groups joined by `OR`. A group of one clause keeps its modifier in the result
/// (`+a` in `must`, `-a` in `must_not`).
fn disjunction(mut groups: Vec<Vec<Item>>) -> Query {
    if groups.len() == 1 {
        return conjunction(groups.pop().unwrap_or_default());
    }
    let mut target = BoolQuery::default();
    for mut group in groups {
        match (group.pop(), group.is_empty()) {
            (Some(item), true) => match item.occur {
                Occur::Default => add_should(&mut target, item.query),
                Occur::Must => add_must(&mut target, item.query),
                Occur::MustNot => add_must_not(&mut target, item.query),
            },
            (Some(last), false) => {
                group.push(last);
                add_should(&mut target, conjunction(group));
            }
            (None, _) => {}
        }
    }
    finish(target)
}

/// Drops redundant `MatchAll`s, makes a purely negative query match everything else, and
/// unwraps a lone clause.
fn finish(mut target: BoolQuery) -> Query {
    if target.must.iter().any(|q| *q != Query::MatchAll) || !target.filter.is_empty() {
        target.must.retain(|q| *q != Query::MatchAll);
    } else {
        target.must.truncate(1);
    }
    let positive = target.must.len() + target.filter.len() + target.should.len();
    if positive == 0 && !target.must_not.is_empty() {
        target.must.push(Query::MatchAll);
    }
    let only = |list: &Vec<Query>, others: [&Vec<Query>; 3]| {
        list.len() == 1 && others.iter().all(|other| other.is_empty())
    };
    if only(
        &target.must,
        [&target.filter, &target.should, &target.must_not],
    ) {
        return target.must.pop().unwrap_or(Query::MatchAll);
    }
    if only(
        &target.should,
        [&target.must, &target.filter, &target.must_not],
    ) {
        return target.should.pop().unwrap_or(Query::MatchAll);
    }
    if positive == 0 && target.must_not.is_empty() {
        return Query::MatchAll;
    }
    Query::Bool(target)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // ----- helpers: trees without spans -----

    /// The query with every span zeroed.
    fn strip(query: Query) -> Query {
        let list = |queries: Vec<Query>| queries.into_iter().map(strip).collect();
        let zero = Span::default();
        match query {
            Query::Match {
                field,
                value,
                operator,
                ..
            } => Query::Match {
                field,
                value,
                operator,
                span: zero,
            },
            Query::Phrase { field, text, .. } => Query::Phrase {
                field,
                text,
                span: zero,
            },
            Query::Term { field, values, .. } => Query::Term {
                field,
                values,
                span: zero,
            },
            Query::Wildcard { field, pattern, .. } => Query::Wildcard {
                field,
                pattern,
                span: zero,
            },
            Query::Range {
                field,
                lower,
                upper,
                ..
            } => Query::Range {
                field,
                lower,
                upper,
                span: zero,
            },
            Query::Exists { field, .. } => Query::Exists { field, span: zero },
            Query::Bool(b) => Query::Bool(BoolQuery {
                must: list(b.must),
                filter: list(b.filter),
                should: list(b.should),
                must_not: list(b.must_not),
                minimum_should_match: b.minimum_should_match,
            }),
            other => other,
        }
    }

    fn p(input: &str) -> Query {
        match parse(input) {
            Ok(query) => strip(query),
            Err(error) => panic!("{input:?} failed: {error}"),
        }
    }

    fn p_and(input: &str) -> Query {
        match parse_with(input, Operator::And) {
            Ok(query) => strip(query),
            Err(error) => panic!("{input:?} failed: {error}"),
        }
    }

    /// The error position and message.
    fn err(input: &str) -> (usize, String) {
        match parse(input) {
            Err(QueryError::Syntax { position, message }) => (position, message),
            other => panic!("{input:?} should fail, got {other:?}"),
        }
    }

    fn err_pos(input: &str) -> usize {
        err(input).0
    }

    fn fm(field: &str, value: &str) -> Query {
        Query::Match {
            field: Some(field.to_owned()),
            value: value.to_owned(),
            operator: Operator::Or,
            span: Span::default(),
        }
    }

    fn w(value: &str) -> Query {
        Query::Match {
            field: None,
            value: value.to_owned(),
            operator: Operator::Or,
            span: Span::default(),
        }
    }

    fn w_and(value: &str) -> Query {
        Query::Match {
            field: None,
            value: value.to_owned(),
            operator: Operator::And,
            span: Span::default(),
        }
    }

    fn phrase(field: Option<&str>, text: &str) -> Query {
        Query::Phrase {
            field: field.map(str::to_owned),
            text: text.to_owned(),
            span: Span::default(),
        }
    }

    fn wildcard(field: Option<&str>, pattern: &str) -> Query {
        Query::Wildcard {
            field: field.map(str::to_owned),
            pattern: pattern.to_owned(),
            span: Span::default(),
        }
    }

    fn exists(field: &str) -> Query {
        Query::Exists {
            field: field.to_owned(),
            span: Span::default(),
        }
    }

    fn range(field: &str, lower: RangeBound, upper: RangeBound) -> Query {
        Query::Range {
            field: field.to_owned(),
            lower,
            upper,
            span: Span::default(),
        }
    }

    fn inc(value: &str) -> RangeBound {
        RangeBound::Included(value.to_owned())
    }

    fn exc(value: &str) -> RangeBound {
        RangeBound::Excluded(value.to_owned())
    }

    fn should(queries: Vec<Query>) -> Query {
        Query::Bool(BoolQuery {
            should: queries,
            ..BoolQuery::default()
        })
    }

    fn must(queries: Vec<Query>) -> Query {
        Query::Bool(BoolQuery {
            must: queries,
            ..BoolQuery::default()
        })
    }

    fn bool_of(must: Vec<Query>, must_not: Vec<Query>, should: Vec<Query>) -> Query {
        Query::Bool(BoolQuery {
            must,
            must_not,
            should,
            ..BoolQuery::default()
        })
    }

    fn not(query: Query) -> Query {
        bool_of(vec![Query::MatchAll], vec![query], vec![])
    }

    // ----- single clauses -----

    #[test]
    fn empty_and_blank_queries_match_everything() {
        assert_eq!(p(""), Query::MatchAll);
        assert_eq!(p("   \t\n"), Query::MatchAll);
    }

    #[test]
    fn star_matches_everything() {
        assert_eq!(p("*"), Query::MatchAll);
        assert_eq!(p("*:*"), Query::MatchAll);
        assert_eq!(p(" * "), Query::MatchAll);
    }

    #[test]
    fn star_field_means_default_fields() {
        assert_eq!(p("*:error"), w("error"));
        assert_eq!(p("*:(a b)"), should(vec![w("a"), w("b")]));
    }

    #[test]
    fn bare_word_uses_default_fields() {
        assert_eq!(p("error"), w("error"));
    }

    #[test]
    fn field_value() {
        assert_eq!(p("level:ERROR"), fm("level", "ERROR"));
        assert_eq!(p("http.status:500"), fm("http.status", "500"));
    }

    #[test]
    fn field_names_with_special_characters() {
        assert_eq!(p("@timestamp:x"), fm("@timestamp", "x"));
        assert_eq!(
            p("kubernetes.namespace:prod"),
            fm("kubernetes.namespace", "prod")
        );
        assert_eq!(p("my/field:x"), fm("my/field", "x"));
        assert_eq!(p("user-agent_2:x"), fm("user-agent_2", "x"));
        assert_eq!(p("hôte:x"), fm("hôte", "x"));
    }

    #[test]
    fn whitespace_after_the_colon_is_allowed() {
        assert_eq!(p("status: 500"), fm("status", "500"));
    }

    #[test]
    fn values_keep_dashes_dots_slashes_and_symbols() {
        assert_eq!(p("trace:ab-cd.ef/gh"), fm("trace", "ab-cd.ef/gh"));
        assert_eq!(p("x:-5"), fm("x", "-5"));
        assert_eq!(p("x:a+b!c&&d||e<f>"), fm("x", "a+b!c&&d||e<f>"));
        assert_eq!(p("foo-bar"), w("foo-bar"));
        assert_eq!(p("a&&b"), w("a&&b"));
    }

    #[test]
    fn match_uses_the_default_operator() {
        assert_eq!(p_and("error"), w_and("error"));
        assert_eq!(
            p_and("x:y"),
            Query::Match {
                field: Some("x".into()),
                value: "y".into(),
                operator: Operator::And,
                span: Span::default(),
            }
        );
    }

    #[test]
    fn lower_case_operators_are_words() {
        assert_eq!(p("a and b"), should(vec![w("a"), w("and"), w("b")]));
        assert_eq!(p("not"), w("not"));
        assert_eq!(
            p("ANDROID OR ORACLE"),
            should(vec![w("ANDROID"), w("ORACLE")])
        );
        assert_eq!(p("NOTE"), w("NOTE"));
    }

    #[test]
    fn quoted_phrases() {
        assert_eq!(
            p("\"connection refused\""),
            phrase(None, "connection refused")
        );
        assert_eq!(
            p("message:\"connection refused\""),
            phrase(Some("message"), "connection refused")
        );
        assert_eq!(
            p(r#"m:"say \"hi\" \\ ok""#),
            phrase(Some("m"), r#"say "hi" \ ok"#)
        );
        assert_eq!(
            p(r#"m:"a:b (c) [d] * AND""#),
            phrase(Some("m"), "a:b (c) [d] * AND")
        );
        assert_eq!(p("m:\"\""), phrase(Some("m"), ""));
    }

    #[test]
    fn escapes_are_resolved() {
        assert_eq!(p(r"host:a\:b"), fm("host", "a:b"));
        assert_eq!(p(r"\(x\)"), w("(x)"));
        assert_eq!(p(r"a\ b"), w("a b"));
        assert_eq!(p(r"\-x"), w("-x"));
        assert_eq!(p(r"\AND"), w("AND"));
        assert_eq!(p(r"x:a\~b\^c"), fm("x", "a~b^c"));
        assert_eq!(p(r"path:\/var\/log"), fm("path", "/var/log"));
        assert_eq!(p(r"x:é\é"), fm("x", "éé"));
    }

    #[test]
    fn escaped_wildcards_are_literal() {
        assert_eq!(p(r"x:a\*b"), fm("x", "a*b"));
        assert_eq!(p(r"x:a\?"), fm("x", "a?"));
    }

    #[test]
    fn wildcards() {
        assert_eq!(p("host:web-*"), wildcard(Some("host"), "web-*"));
        assert_eq!(p("ab?d"), wildcard(None, "ab?d"));
        assert_eq!(p("*ing"), wildcard(None, "*ing"));
        assert_eq!(p("x:**"), wildcard(Some("x"), "**"));
    }

    #[test]
    fn wildcard_patterns_keep_wildcard_escapes() {
        assert_eq!(p(r"x:a\*b*"), wildcard(Some("x"), r"a\*b*"));
        assert_eq!(p(r"x:a\?b?"), wildcard(Some("x"), r"a\?b?"));
        assert_eq!(p(r"x:a\\b*"), wildcard(Some("x"), r"a\\b*"));
        assert_eq!(p(r"x:a\:b*"), wildcard(Some("x"), "a:b*"));
    }

    #[test]
    fn exists_queries() {
        assert_eq!(p("user.id:*"), exists("user.id"));
        assert_eq!(p("_exists_:user.id"), exists("user.id"));
        assert_eq!(p("_exists_: user.id"), exists("user.id"));
        assert_eq!(p("NOT _exists_:x"), not(exists("x")));
    }

    // ----- ranges -----

    #[test]
    fn inclusive_exclusive_and_mixed_ranges() {
        assert_eq!(p("x:[1 TO 5]"), range("x", inc("1"), inc("5")));
        assert_eq!(p("x:{1 TO 5}"), range("x", exc("1"), exc("5")));
        assert_eq!(p("x:[1 TO 5}"), range("x", inc("1"), exc("5")));
        assert_eq!(p("x:{1 TO 5]"), range("x", exc("1"), inc("5")));
        assert_eq!(p("x:[ 1   TO\t5 ]"), range("x", inc("1"), inc("5")));
    }

    #[test]
    fn unbounded_ranges() {
        assert_eq!(p("x:[* TO 5]"), range("x", RangeBound::Unbounded, inc("5")));
        assert_eq!(p("x:{1 TO *]"), range("x", exc("1"), RangeBound::Unbounded));
        assert_eq!(p("x:[* TO *]"), exists("x"));
    }

    #[test]
    fn date_ranges() {
        assert_eq!(
            p("@timestamp:[2026-11-01 TO now-1h]"),
            range("@timestamp", inc("2026-11-01"), inc("now-1h"))
        );
        assert_eq!(
            p("@timestamp:[2026-11-01T00:00:00Z TO 2026-11-02T00:00:00.000+01:00}"),
            range(
                "@timestamp",
                inc("2026-11-01T00:00:00Z"),
                exc("2026-11-02T00:00:00.000+01:00")
            )
        );
        assert_eq!(
            p("@timestamp:[now-1d/d TO now]"),
            range("@timestamp", inc("now-1d/d"), inc("now"))
        );
    }

    #[test]
    fn quoted_range_bounds() {
        assert_eq!(p(r#"x:["a b" TO "c]"]"#), range("x", inc("a b"), inc("c]")));
    }

    #[test]
    fn comparisons() {
        assert_eq!(p("x:>5"), range("x", exc("5"), RangeBound::Unbounded));
        assert_eq!(p("x:>=5"), range("x", inc("5"), RangeBound::Unbounded));
        assert_eq!(p("x:<5"), range("x", RangeBound::Unbounded, exc("5")));
        assert_eq!(p("x:<=5"), range("x", RangeBound::Unbounded, inc("5")));
        assert_eq!(p("x:>= 5"), range("x", inc("5"), RangeBound::Unbounded));
        assert_eq!(
            p("x:>=-5.5"),
            range("x", inc("-5.5"), RangeBound::Unbounded)
        );
        assert_eq!(
            p(r#"x:<"a b""#),
            range("x", RangeBound::Unbounded, exc("a b"))
        );
        assert_eq!(p("x:>=*"), exists("x"));
    }

    #[test]
    fn comparison_values_run_to_whitespace_or_paren() {
        assert_eq!(
            p("@timestamp:>=2026-11-23T10:00:00Z"),
            range(
                "@timestamp",
                inc("2026-11-23T10:00:00Z"),
                RangeBound::Unbounded
            )
        );
        assert_eq!(
            p("(@timestamp:<2026-11-23T10:00:00Z)"),
            range(
                "@timestamp",
                RangeBound::Unbounded,
                exc("2026-11-23T10:00:00Z")
            )
        );
        assert_eq!(p(r"x:>a\)b"), range("x", exc("a)b"), RangeBound::Unbounded));
        assert_eq!(
            p("@timestamp:>=2026-11-23T10:00:00Z AND level:ERROR"),
            must(vec![
                range(
                    "@timestamp",
                    inc("2026-11-23T10:00:00Z"),
                    RangeBound::Unbounded
                ),
                fm("level", "ERROR"),
            ])
        );
    }

    #[test]
    fn bare_angle_brackets_are_words() {
        assert_eq!(p(">5"), w(">5"));
        assert_eq!(p("<html>"), w("<html>"));
    }

    // ----- booleans -----

    #[test]
    fn or_and_not() {
        assert_eq!(p("a OR b"), should(vec![w("a"), w("b")]));
        assert_eq!(p("a || b"), should(vec![w("a"), w("b")]));
        assert_eq!(p("a AND b"), must(vec![w("a"), w("b")]));
        assert_eq!(p("a && b"), must(vec![w("a"), w("b")]));
        assert_eq!(p("a &&b"), must(vec![w("a"), w("b")]));
        assert_eq!(p("NOT a"), not(w("a")));
        assert_eq!(p("!a"), not(w("a")));
        assert_eq!(p("! a"), not(w("a")));
        assert_eq!(p("NOT(a)"), not(w("a")));
    }

    #[test]
    fn implicit_operator_is_or_by_default() {
        assert_eq!(p("a b c"), should(vec![w("a"), w("b"), w("c")]));
    }

    #[test]
    fn implicit_operator_can_be_and() {
        assert_eq!(
            p_and("a b c"),
            must(vec![w_and("a"), w_and("b"), w_and("c")])
        );
        assert_eq!(
            p_and("a b OR c"),
            should(vec![must(vec![w_and("a"), w_and("b")]), w_and("c")])
        );
    }

    #[test]
    fn and_binds_tighter_than_or() {
        assert_eq!(
            p("a OR b AND c"),
            should(vec![w("a"), must(vec![w("b"), w("c")])])
        );
        assert_eq!(
            p("a AND b OR c AND d"),
            should(vec![must(vec![w("a"), w("b")]), must(vec![w("c"), w("d")])])
        );
        assert_eq!(
            p("a b AND c"),
            should(vec![w("a"), must(vec![w("b"), w("c")])])
        );
    }

    #[test]
    fn not_binds_tighter_than_and_and_or() {
        assert_eq!(
            p("NOT a AND b"),
            bool_of(vec![w("b")], vec![w("a")], vec![])
        );
        assert_eq!(
            p("a AND NOT b"),
            bool_of(vec![w("a")], vec![w("b")], vec![])
        );
        assert_eq!(p("a OR NOT b"), should(vec![w("a"), not(w("b"))]));
        assert_eq!(p("NOT a OR b"), should(vec![not(w("a")), w("b")]));
        assert_eq!(
            p("NOT a AND NOT b"),
            bool_of(vec![Query::MatchAll], vec![w("a"), w("b")], vec![])
        );
    }

    #[test]
    fn not_after_implicit_operator_reads_as_minus() {
        assert_eq!(
            p("error NOT timeout"),
            bool_of(vec![], vec![w("timeout")], vec![w("error")])
        );
        assert_eq!(p("error !timeout"), p("error -timeout"));
        assert_eq!(p("a NOT b c"), p("a -b c"));
        assert_eq!(
            p_and("error NOT timeout"),
            bool_of(vec![w_and("error")], vec![w_and("timeout")], vec![])
        );
    }

    #[test]
    fn double_negation_cancels() {
        assert_eq!(p("NOT NOT a"), w("a"));
        assert_eq!(p("NOT NOT NOT a"), not(w("a")));
    }

    #[test]
    fn modifiers() {
        assert_eq!(
            p("+a -b c"),
            bool_of(vec![w("a")], vec![w("b")], vec![w("c")])
        );
        assert_eq!(p("+a"), w("a"));
        assert_eq!(p("-a"), not(w("a")));
        assert_eq!(p("- a"), not(w("a")));
        assert_eq!(
            p("-a -b"),
            bool_of(vec![Query::MatchAll], vec![w("a"), w("b")], vec![])
        );
        assert_eq!(p("+a +b"), must(vec![w("a"), w("b")]));
        assert_eq!(p("a OR -b"), bool_of(vec![], vec![w("b")], vec![w("a")]));
        assert_eq!(p("a AND -b"), bool_of(vec![w("a")], vec![w("b")], vec![]));
        assert_eq!(p("+a AND b"), must(vec![w("a"), w("b")]));
        assert_eq!(
            p_and("+a -b c"),
            bool_of(vec![w_and("a"), w_and("c")], vec![w_and("b")], vec![])
        );
        assert_eq!(p("-status:500"), not(fm("status", "500")));
        assert_eq!(p("+level:ERROR"), fm("level", "ERROR"));
    }

    #[test]
    fn modifiers_on_groups() {
        assert_eq!(
            p("+(a b) c"),
            bool_of(vec![should(vec![w("a"), w("b")])], vec![], vec![w("c")])
        );
        assert_eq!(
            p("-(a OR b) c"),
            bool_of(vec![], vec![w("a"), w("b")], vec![w("c")])
        );
        assert_eq!(p("-(a AND b)"), not(must(vec![w("a"), w("b")])));
        assert_eq!(
            p("NOT (a OR b)"),
            bool_of(vec![Query::MatchAll], vec![w("a"), w("b")], vec![])
        );
        assert_eq!(p("NOT (a OR b)"), p("-(a OR b)"));
    }

    #[test]
    fn parentheses() {
        assert_eq!(p("(a)"), w("a"));
        assert_eq!(p("((a))"), w("a"));
        assert_eq!(
            p("(a OR b) AND c"),
            must(vec![should(vec![w("a"), w("b")]), w("c")])
        );
        assert_eq!(
            p("a AND (b OR c)"),
            must(vec![w("a"), should(vec![w("b"), w("c")])])
        );
        assert_eq!(p("(a)(b)"), should(vec![w("a"), w("b")]));
        assert_eq!(p("( a  OR  b )"), should(vec![w("a"), w("b")]));
    }

    #[test]
    fn trivially_nested_booleans_are_flattened() {
        assert_eq!(p("a OR (b OR c)"), should(vec![w("a"), w("b"), w("c")]));
        assert_eq!(p("(a AND b) AND c"), must(vec![w("a"), w("b"), w("c")]));
        assert_eq!(
            p("(a AND NOT b) AND c"),
            bool_of(vec![w("a"), w("c")], vec![w("b")], vec![])
        );
        assert_eq!(
            p("NOT a AND (b OR c)"),
            bool_of(vec![should(vec![w("b"), w("c")])], vec![w("a")], vec![])
        );
        // Not flattened: different semantics.
        assert_eq!(
            p("a OR (b AND c)"),
            should(vec![w("a"), must(vec![w("b"), w("c")])])
        );
    }

    #[test]
    fn field_groups_apply_the_field_inside() {
        assert_eq!(
            p("status:(500 OR 503)"),
            should(vec![fm("status", "500"), fm("status", "503")])
        );
        assert_eq!(
            p("status:(500 503 NOT 504)"),
            bool_of(
                vec![],
                vec![fm("status", "504")],
                vec![fm("status", "500"), fm("status", "503")]
            )
        );
        assert_eq!(
            p(r#"m:(a "b c" d* *)"#),
            should(vec![
                fm("m", "a"),
                phrase(Some("m"), "b c"),
                wildcard(Some("m"), "d*"),
                exists("m"),
            ])
        );
        assert_eq!(
            p("status:(>=500 OR [200 TO 204})"),
            should(vec![
                range("status", inc("500"), RangeBound::Unbounded),
                range("status", inc("200"), exc("204")),
            ])
        );
        assert_eq!(
            p("status:(a OR (b AND c))"),
            should(vec![
                fm("status", "a"),
                must(vec![fm("status", "b"), fm("status", "c")])
            ])
        );
        assert_eq!(
            p("status:(a OR other:b)"),
            should(vec![fm("status", "a"), fm("other", "b")])
        );
        assert_eq!(p("x:(a) y"), should(vec![fm("x", "a"), w("y")]));
    }

    #[test]
    fn realistic_queries() {
        assert_eq!(
            p("level:ERROR AND http.status:>=500"),
            must(vec![
                fm("level", "ERROR"),
                range("http.status", inc("500"), RangeBound::Unbounded),
            ])
        );
        assert_eq!(
            p("kubernetes.namespace:prod AND (level:ERROR OR level:FATAL) AND NOT service:canary"),
            bool_of(
                vec![
                    fm("kubernetes.namespace", "prod"),
                    should(vec![fm("level", "ERROR"), fm("level", "FATAL")]),
                ],
                vec![fm("service", "canary")],
                vec![]
            )
        );
    }

    // ----- spans -----

    #[test]
    fn spans_cover_the_clause() {
        let span = |start, end| Span { start, end };
        assert_eq!(
            parse("level:ERROR"),
            Ok(Query::Match {
                field: Some("level".into()),
                value: "ERROR".into(),
                operator: Operator::Or,
                span: span(0, 11),
            })
        );
        assert_eq!(
            parse("a \"b c\""),
            Ok(Query::Bool(BoolQuery {
                should: vec![
                    Query::Match {
                        field: None,
                        value: "a".into(),
                        operator: Operator::Or,
                        span: span(0, 1),
                    },
                    Query::Phrase {
                        field: None,
                        text: "b c".into(),
                        span: span(2, 7),
                    },
                ],
                ..BoolQuery::default()
            }))
        );
        assert_eq!(
            parse(" x:[1 TO 2] "),
            Ok(Query::Range {
                field: "x".into(),
                lower: inc("1"),
                upper: inc("2"),
                span: span(1, 11),
            })
        );
        assert_eq!(
            parse("_exists_:a"),
            Ok(Query::Exists {
                field: "a".into(),
                span: span(0, 10),
            })
        );
        assert_eq!(
            parse("x:>=5)").err().map(|e| e.to_string()),
            Some("query syntax error at position 5: unexpected `)` without a matching `(`".into())
        );
    }

    #[test]
    fn spans_inside_a_field_group_cover_the_term() {
        let Ok(Query::Bool(b)) = parse("st:(ab OR cd*)") else {
            panic!("expected a bool");
        };
        assert_eq!(
            b.should,
            vec![
                Query::Match {
                    field: Some("st".into()),
                    value: "ab".into(),
                    operator: Operator::Or,
                    span: Span { start: 4, end: 6 },
                },
                Query::Wildcard {
                    field: Some("st".into()),
                    pattern: "cd*".into(),
                    span: Span { start: 10, end: 13 },
                },
            ]
        );
    }

    // ----- errors -----

    #[test]
    fn unbalanced_parentheses() {
        assert_eq!(
            err("(a OR b"),
            (0, "unclosed `(`: expected a matching `)`".into())
        );
        assert_eq!(err_pos("a AND (b OR (c)"), 6);
        assert_eq!(
            err("a)"),
            (1, "unexpected `)` without a matching `(`".into())
        );
        assert_eq!(err_pos("(a))"), 3);
        assert_eq!(err_pos(")"), 0);
        assert_eq!(err_pos("("), 0);
        assert_eq!(err_pos("x:(a"), 2);
        assert_eq!(
            err("a ()"),
            (3, "empty parentheses: expected a clause before `)`".into())
        );
    }

    #[test]
    fn unterminated_quotes() {
        assert_eq!(
            err("msg:\"abc"),
            (
                4,
                "unterminated quoted phrase starting at position 4: expected a closing `\"`".into()
            )
        );
        assert_eq!(err_pos("a \"b\\\""), 2);
        assert_eq!(err_pos("a \"b\\"), 2);
        assert_eq!(err_pos("x:[\"a TO b]"), 3);
    }

    #[test]
    fn missing_values() {
        assert_eq!(
            err("status:"),
            (7, "expected a value after `status:`".into())
        );
        assert_eq!(
            err("status:  "),
            (9, "expected a value after `status:`".into())
        );
        assert_eq!(
            err("(status:)"),
            (8, "expected a value after `status:`".into())
        );
        assert_eq!(
            err("status: AND b"),
            (
                8,
                "expected a value after `status:`, found the operator `AND` (quote it to \
                 search for the word)"
                    .into()
            )
        );
        assert_eq!(err_pos("status:NOT"), 7);
        assert_eq!(
            err("_exists_:"),
            (
                9,
                "expected a field name after `_exists_:`, found the end of the query".into()
            )
        );
        assert_eq!(
            err("x:>="),
            (
                4,
                "expected a value after `>=`, found the end of the query".into()
            )
        );
        assert_eq!(err_pos("(x:< )"), 5);
        assert_eq!(err_pos("x:> OR y"), 4);
    }

    #[test]
    fn colons_in_values_need_quoting() {
        assert_eq!(
            err("@timestamp:2026-11-23T10:00:00Z"),
            (
                24,
                "unexpected `:` in the value of `@timestamp:`; quote the value or escape the \
                 colon (`\\:`)"
                    .into()
            )
        );
        assert_eq!(err_pos("a:b:c"), 3);
    }

    #[test]
    fn bad_field_names() {
        assert_eq!(err(":x"), (0, "expected a field name before `:`".into()));
        assert_eq!(err_pos("a :x"), 2);
        assert_eq!(
            err("http.*:x"),
            (
                0,
                "invalid field name `http.*`: field names may contain letters, digits, `_`, \
                 `.`, `@`, `-` and `/`"
                    .into()
            )
        );
        assert_eq!(err_pos(r"a\ b:x"), 0);
        assert_eq!(err_pos("x _exists_:a*"), 11);
        assert_eq!(err_pos("a!:x"), 0);
    }

    #[test]
    fn missing_operands() {
        assert_eq!(
            err("a AND"),
            (
                2,
                "expected a clause after `AND`, found the end of the query".into()
            )
        );
        assert_eq!(
            err("a OR"),
            (
                2,
                "expected a clause after `OR`, found the end of the query".into()
            )
        );
        assert_eq!(
            err("a ||"),
            (
                2,
                "expected a clause after `||`, found the end of the query".into()
            )
        );
        assert_eq!(
            err("a AND OR b"),
            (
                2,
                "expected a clause after `AND`, found the operator `OR`".into()
            )
        );
        assert_eq!(err("AND a"), (0, "`AND` needs a clause before it".into()));
        assert_eq!(err("(OR a)"), (1, "`OR` needs a clause before it".into()));
        assert_eq!(err("&& a"), (0, "`&&` needs a clause before it".into()));
        assert_eq!(err_pos("(a AND)"), 3);
        assert_eq!(
            err("NOT"),
            (
                0,
                "expected a clause after `NOT`, found the end of the query".into()
            )
        );
        assert_eq!(err_pos("a NOT"), 2);
        assert_eq!(err_pos("a AND NOT"), 6);
        assert_eq!(err_pos("!"), 0);
        assert_eq!(
            err("-"),
            (
                0,
                "expected a clause after `-`, found the end of the query".into()
            )
        );
        assert_eq!(err_pos("a +"), 2);
        assert_eq!(err_pos("(a -)"), 3);
        assert_eq!(err_pos("a - OR b"), 2);
    }

    #[test]
    fn doubled_modifiers() {
        assert_eq!(
            err("--a"),
            (
                1,
                "unexpected `-`: a clause takes one `+`, `-` or `NOT`".into()
            )
        );
        assert_eq!(err_pos("NOT -a"), 4);
        assert_eq!(err_pos("a NOT +b"), 6);
    }

    #[test]
    fn bad_ranges() {
        assert_eq!(
            err("x:[1 TO]"),
            (
                7,
                "expected an upper bound after `TO` (`*` for none), found `]`".into()
            )
        );
        assert_eq!(
            err("x:[1 5]"),
            (5, "expected `TO` after the lower bound, found `5`".into())
        );
        assert_eq!(err_pos("x:[1 to 5]"), 5);
        assert_eq!(err_pos("x:[1]"), 4);
        assert_eq!(
            err("x:[1 TO 5"),
            (
                2,
                "unclosed range: expected `]` or `}` after the upper bound".into()
            )
        );
        assert_eq!(err_pos("x:[1 TO "), 2);
        assert_eq!(err_pos("x:[1"), 2);
        assert_eq!(err_pos("x:["), 2);
        assert_eq!(
            err("x:[1 TO 5 6]"),
            (
                10,
                "expected `]` or `}` to close the range, found `6`".into()
            )
        );
        assert_eq!(err_pos("x:[]"), 3);
        assert_eq!(
            err("x:[TO 5]"),
            (
                3,
                "expected a lower bound before `TO` (`*` for none)".into()
            )
        );
    }

    #[test]
    fn ranges_need_a_field() {
        assert_eq!(
            err("[1 TO 5]"),
            (
                0,
                "a range needs a field, e.g. `status:[200 TO 299]` or `status:>=500`".into()
            )
        );
        assert_eq!(err_pos("a {1 TO 5}"), 2);
        assert_eq!(err_pos("*:[1 TO 5]"), 2);
        assert_eq!(err_pos("*:>5"), 2);
    }

    #[test]
    fn stray_brackets() {
        assert_eq!(err("a ]"), (2, "unexpected `]`".into()));
        assert_eq!(err_pos("}"), 0);
    }

    #[test]
    fn unsupported_features() {
        let (position, message) = err("quick~2");
        assert_eq!(position, 5);
        assert!(message.contains("fuzzy"), "{message}");
        assert_eq!(err_pos("\"a b\"~3"), 5);
        let (position, message) = err("a:b^2");
        assert_eq!(position, 3);
        assert!(message.contains("boost"), "{message}");
        assert_eq!(err_pos("(a)^2"), 3);
        let (position, message) = err("path:/var/");
        assert_eq!(position, 5);
        assert!(message.contains("regular expression"), "{message}");
        assert_eq!(err_pos("/ab.*/"), 0);
        assert_eq!(err_pos("~"), 0);
    }

    #[test]
    fn trailing_backslash() {
        assert_eq!(
            err("a\\"),
            (
                1,
                "a `\\` at the end of the query escapes nothing; write `\\\\` for a backslash"
                    .into()
            )
        );
        assert_eq!(err_pos("x:[1 TO 5\\"), 9);
        assert_eq!(err_pos("x:>5\\"), 4);
    }

    #[test]
    fn depth_limit() {
        let nested = |n: usize| format!("{}a{}", "(".repeat(n), ")".repeat(n));
        assert_eq!(p(&nested(MAX_DEPTH)), w("a"));
        assert_eq!(
            err(&nested(MAX_DEPTH + 1)),
            (
                MAX_DEPTH,
                format!("parentheses nest deeper than {MAX_DEPTH} levels")
            )
        );
        let nots = |n: usize| format!("{}a", "NOT ".repeat(n));
        assert!(parse(&nots(MAX_DEPTH)).is_ok());
        assert_eq!(err_pos(&nots(MAX_DEPTH + 1)), MAX_DEPTH * 4);
        // Depth is nesting, not the number of groups.
        assert!(parse(&"(a) ".repeat(100)).is_ok());
    }

    #[test]
    fn clause_limit() {
        let clauses = |n: usize| vec!["a"; n].join(" ");
        assert!(parse(&clauses(MAX_CLAUSES)).is_ok());
        assert_eq!(
            err(&clauses(MAX_CLAUSES + 1)),
            (
                MAX_CLAUSES * 2,
                format!("the query has more than {MAX_CLAUSES} clauses")
            )
        );
    }

    #[test]
    fn length_limit() {
        let long = "a".repeat(MAX_QUERY_LEN + 1);
        assert_eq!(
            err(&long),
            (
                MAX_QUERY_LEN,
                format!(
                    "the query is {} bytes long; the limit is {MAX_QUERY_LEN} bytes",
                    MAX_QUERY_LEN + 1
                )
            )
        );
        assert!(parse(&"a".repeat(MAX_QUERY_LEN)).is_ok());
        // Three-byte characters: the position stays on a character boundary.
        let wide = "日".repeat(MAX_QUERY_LEN / 3 + 1);
        let position = err_pos(&wide);
        assert!(wide.is_char_boundary(position));
        assert_eq!(position, MAX_QUERY_LEN / 3 * 3);
    }

    // ----- properties -----

    fn token() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec![
            "a",
            "status",
            "x.y",
            ":",
            "\"",
            "(",
            ")",
            "[",
            "]",
            "{",
            "}",
            "TO",
            "AND",
            "OR",
            "NOT",
            "&&",
            "||",
            "!",
            "+",
            "-",
            "*",
            "?",
            "\\",
            "~",
            "^",
            "/",
            ">=",
            ">",
            "<",
            "<=",
            "_exists_",
            " ",
            "\t",
            "é",
            "日本",
            "2026-11-01T10:00:00Z",
            "now-1h",
        ])
    }

    fn check_result(input: &str, result: Result<Query, QueryError>) {
        match result {
            Ok(query) => check_spans(input, &query),
            Err(QueryError::Syntax { position, message }) => {
                assert!(position <= input.len(), "{input:?}: {position} {message}");
                assert!(input.is_char_boundary(position), "{input:?}: {position}");
                assert!(!message.is_empty());
            }
            Err(other) => panic!("{input:?}: unexpected error kind {other:?}"),
        }
    }

    fn check_spans(input: &str, query: &Query) {
        let span = match query {
            Query::Match { span, .. }
            | Query::Phrase { span, .. }
            | Query::Term { span, .. }
            | Query::Wildcard { span, .. }
            | Query::Range { span, .. }
            | Query::Exists { span, .. } => *span,
            Query::Bool(b) => {
                for q in b
                    .must
                    .iter()
                    .chain(&b.filter)
                    .chain(&b.should)
                    .chain(&b.must_not)
                {
                    check_spans(input, q);
                }
                return;
            }
            Query::MatchAll | Query::MatchNone => return,
        };
        assert!(
            span.start < span.end && span.end <= input.len(),
            "{input:?}: {span:?}"
        );
        assert!(input.is_char_boundary(span.start) && input.is_char_boundary(span.end));
    }

    proptest! {
        #[test]
        fn token_soup_never_panics(tokens in prop::collection::vec(token(), 0..24), spaced: bool) {
            let input = tokens.join(if spaced { " " } else { "" });
            check_result(&input, parse(&input));
            check_result(&input, parse_with(&input, Operator::And));
        }

        #[test]
        fn any_string_never_panics(input in "\\PC{0,64}") {
            check_result(&input, parse(&input));
        }
    }
}
