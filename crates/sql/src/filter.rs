//! The `[cohort] filters` language, parsed into an [`Expr`].
//!
//! This is the one parser of the filter grammar: `healthgap_cohort::filter`
//! translates its tree into polars expressions for local data, and the SQL
//! layer renders it for warehouses. A recursive-descent parser:
//!
//! ```text
//! or         := and (("or" | "||") and)*
//! and        := unary (("and" | "&&") unary)*
//! unary      := "not" unary | "(" or ")" | comparison
//! comparison := IDENT "in" "[" literal ("," literal)* "]"
//!             | IDENT "is" ["not"] "null"
//!             | IDENT ("==" | "=" | "!=" | "<" | "<=" | ">" | ">=") literal
//! literal    := NUMBER | '…' | "…" | "true" | "false"
//! ```
//! Keywords are case-insensitive; identifiers are letters, digits, `_` and
//! `.` (a `.` is part of the column's name); strings have no escapes; an `in`
//! list holds only numbers or only texts. Anything else — a `;`, `--`, `/*`,
//! a bare word where a value belongs — is a parse error, so a filter can only
//! ever become a quoted comparison.

use crate::error::SqlError;
use crate::expr::{CmpOp, Expr, Literal};

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    Number(f64),
    Str(String),
    Op(String),
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
}

fn number_token(chars: &[char], i: &mut usize) -> Result<Token, String> {
    let start = *i;
    *i += 1;
    while *i < chars.len()
        && (chars[*i].is_ascii_alphanumeric()
            || chars[*i] == '.'
            || ((chars[*i] == '-' || chars[*i] == '+') && matches!(chars[*i - 1], 'e' | 'E')))
    {
        *i += 1;
    }
    let s: String = chars[start..*i].iter().collect();
    let v: f64 = s.parse().map_err(|_| format!("`{s}` is not a number"))?;
    if !v.is_finite() {
        return Err(format!("`{s}` is not a finite number"));
    }
    Ok(Token::Number(v))
}

fn tokenize(text: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let single = match c {
            '(' => Some(Token::LParen),
            ')' => Some(Token::RParen),
            '[' => Some(Token::LBracket),
            ']' => Some(Token::RBracket),
            ',' => Some(Token::Comma),
            _ => None,
        };
        if let Some(t) = single {
            out.push(t);
            i += 1;
            continue;
        }
        match c {
            ' ' | '\t' | '\n' | '\r' => i += 1,
            '\'' | '"' => {
                let start = i + 1;
                let mut j = start;
                while j < chars.len() && chars[j] != c {
                    j += 1;
                }
                if j >= chars.len() {
                    return Err(format!(
                        "unterminated string starting at character {}",
                        i + 1
                    ));
                }
                out.push(Token::Str(chars[start..j].iter().collect()));
                i = j + 1;
            }
            '<' | '>' | '=' | '!' | '&' | '|' => {
                let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
                let op = match two.as_str() {
                    "<=" | ">=" | "==" | "!=" | "&&" | "||" => two,
                    _ if c == '<' || c == '>' || c == '=' => c.to_string(),
                    _ => return Err(format!("unexpected `{c}` at character {}", i + 1)),
                };
                i += op.chars().count();
                out.push(Token::Op(op));
            }
            _ if c.is_ascii_digit()
                || c == '.'
                || (c == '-'
                    && chars
                        .get(i + 1)
                        .is_some_and(|d| d.is_ascii_digit() || *d == '.')) =>
            {
                out.push(number_token(&chars, &mut i)?);
            }
            _ if c.is_alphabetic() || c == '_' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '.')
                {
                    i += 1;
                }
                out.push(Token::Ident(chars[start..i].iter().collect()));
            }
            _ => return Err(format!("unexpected `{c}` at character {}", i + 1)),
        }
    }
    Ok(out)
}

fn keyword(t: Option<&Token>, word: &str) -> bool {
    matches!(t, Some(Token::Ident(s)) if s.eq_ignore_ascii_case(word))
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
    columns: Vec<String>,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn or(&mut self) -> Result<Expr, String> {
        let mut e = self.and()?;
        while keyword(self.peek(), "or") || self.peek() == Some(&Token::Op("||".into())) {
            self.pos += 1;
            e = e.or(self.and()?);
        }
        Ok(e)
    }

    fn and(&mut self) -> Result<Expr, String> {
        let mut e = self.unary()?;
        while keyword(self.peek(), "and") || self.peek() == Some(&Token::Op("&&".into())) {
            self.pos += 1;
            e = e.and(self.unary()?);
        }
        Ok(e)
    }

    fn unary(&mut self) -> Result<Expr, String> {
        if keyword(self.peek(), "not") {
            self.pos += 1;
            return Ok(self.unary()?.not());
        }
        if self.peek() == Some(&Token::LParen) {
            self.pos += 1;
            let e = self.or()?;
            if self.next() != Some(Token::RParen) {
                return Err("missing `)`".into());
            }
            return Ok(e);
        }
        self.comparison()
    }

    fn literal(&mut self) -> Result<Literal, String> {
        match self.next() {
            Some(Token::Number(v)) => Ok(Literal::Number(v)),
            Some(Token::Str(s)) => Ok(Literal::Str(s)),
            Some(Token::Ident(s)) if s.eq_ignore_ascii_case("true") => Ok(Literal::Bool(true)),
            Some(Token::Ident(s)) if s.eq_ignore_ascii_case("false") => Ok(Literal::Bool(false)),
            Some(Token::Ident(s)) => Err(format!(
                "expected a value, found `{s}` (quote text values: '{s}')"
            )),
            Some(t) => Err(format!("expected a value, found {t:?}")),
            None => Err("expected a value at the end".into()),
        }
    }

    fn in_list(&mut self, column: Expr) -> Result<Expr, String> {
        if self.next() != Some(Token::LBracket) {
            return Err("expected `[` after `in`".into());
        }
        let mut values = Vec::new();
        loop {
            values.push(self.literal()?);
            match self.next() {
                Some(Token::Comma) => continue,
                Some(Token::RBracket) => break,
                _ => return Err("expected `,` or `]` in the list".into()),
            }
        }
        let numbers = values.iter().all(|v| matches!(v, Literal::Number(_)));
        let texts = values.iter().all(|v| matches!(v, Literal::Str(_)));
        if !numbers && !texts {
            return Err("a list must hold only numbers or only quoted texts".into());
        }
        Ok(column.in_list(values))
    }

    fn comparison(&mut self) -> Result<Expr, String> {
        let name = match self.next() {
            Some(Token::Ident(s)) => s,
            Some(t) => return Err(format!("expected a column name, found {t:?}")),
            None => return Err("empty filter".into()),
        };
        self.columns.push(name.clone());
        let c = Expr::col(name.as_str());
        if keyword(self.peek(), "in") {
            self.pos += 1;
            return self.in_list(c);
        }
        if keyword(self.peek(), "is") {
            self.pos += 1;
            let negate = keyword(self.peek(), "not");
            if negate {
                self.pos += 1;
            }
            if !keyword(self.peek(), "null") {
                return Err("expected `null` after `is`".into());
            }
            self.pos += 1;
            return Ok(c.is_null(negate));
        }
        let op = match self.next() {
            Some(Token::Op(op)) => op,
            Some(t) => {
                return Err(format!(
                    "expected a comparison operator after `{name}`, found {t:?}"
                ));
            }
            None => return Err(format!("expected a comparison operator after `{name}`")),
        };
        let op = match op.as_str() {
            "==" | "=" => CmpOp::Eq,
            "!=" => CmpOp::Ne,
            "<" => CmpOp::Lt,
            "<=" => CmpOp::Le,
            ">" => CmpOp::Gt,
            ">=" => CmpOp::Ge,
            other => return Err(format!("`{other}` is not a comparison")),
        };
        let value = self.literal()?;
        Ok(c.cmp(op, Expr::Lit(value)))
    }
}

/// A parsed filter: the text as written, its condition and the columns it
/// reads.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    /// The text as written (the attrition step's label).
    pub text: String,
    /// The condition (rows where it is false or unknown are excluded).
    pub expr: Expr,
    /// The columns it reads, in order of appearance.
    pub columns: Vec<String>,
}

/// Parses one `[cohort] filters` string into a [`Filter`].
///
/// Errors: [`SqlError::Filter`] naming the filter and what is wrong.
pub fn parse_filter(text: &str) -> Result<Filter, SqlError> {
    let err = |message: String| SqlError::Filter {
        filter: text.to_string(),
        message,
    };
    let tokens = tokenize(text).map_err(err)?;
    let mut p = Parser {
        tokens,
        pos: 0,
        columns: Vec::new(),
    };
    let expr = p.or().map_err(err)?;
    if p.pos < p.tokens.len() {
        return Err(err(format!(
            "unexpected {:?} after a complete condition (join conditions with `and`/`or`)",
            p.tokens[p.pos]
        )));
    }
    Ok(Filter {
        text: text.to_string(),
        expr,
        columns: p.columns,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialect::Dialect;

    fn pg(text: &str) -> String {
        parse_filter(text)
            .unwrap()
            .expr
            .render_condition(Dialect::Postgres)
            .unwrap()
    }

    #[test]
    fn the_documented_examples_parse() {
        assert_eq!(pg("age >= 18"), "\"age\" >= 18");
        assert_eq!(
            pg("status != 'emergent' and (age < 80 or female == 1)"),
            "(\"status\" <> 'emergent' AND (\"age\" < 80 OR \"female\" = 1))"
        );
        assert_eq!(
            pg("insurance in ['medicare', \"medicaid\"]"),
            "\"insurance\" IN ('medicare', 'medicaid')"
        );
        assert_eq!(pg("adi is not null"), "\"adi\" IS NOT NULL");
        assert_eq!(
            pg("adi is null || not (age < 65) && age >= -1.5e1"),
            "(\"adi\" IS NULL OR (NOT (\"age\" < 65) AND \"age\" >= (-15)))"
        );
        assert_eq!(
            pg("AGE = 18 AND x.y = true"),
            "(\"AGE\" = 18 AND \"x.y\" = TRUE)"
        );
    }

    #[test]
    fn bad_filters_are_errors_that_quote_the_filter() {
        for bad in [
            "age >",
            "age >= 18 65",
            "'x' == 1",
            "age ~ 3",
            "status == urgent",
            "(age > 1",
            "age in [1, 'a']",
            "age in []",
            "age in [true]",
            "age > 1e999",
            "",
        ] {
            let e = parse_filter(bad).unwrap_err().to_string();
            assert!(e.starts_with("filter `"), "{bad}: {e}");
        }
        assert_eq!(
            parse_filter("age >= 18 and female == 1").unwrap().columns,
            vec!["age", "female"]
        );
    }
}
