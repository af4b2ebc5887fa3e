//! Row filters (`[cohort] filters`): a small expression language over columns,
//! compiled to polars expressions.
//!
//! ```text
//! age >= 18
//! status != 'emergent' and (age < 80 or female == 1)
//! insurance in ['medicare', 'medicaid']
//! adi is not null
//! ```
//! Operators: `==` (or `=`), `!=`, `<`, `<=`, `>`, `>=`, `in [...]`, `is null`,
//! `is not null`; combined with `and`/`&&`, `or`/`||`, `not` and parentheses.
//! Literals: numbers, quoted strings, `true`/`false`.

use polars::prelude::*;

use crate::error::CohortError;

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

fn tokenize(text: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            ' ' | '\t' | '\n' | '\r' => i += 1,
            '(' => {
                out.push(Token::LParen);
                i += 1;
            }
            ')' => {
                out.push(Token::RParen);
                i += 1;
            }
            '[' => {
                out.push(Token::LBracket);
                i += 1;
            }
            ']' => {
                out.push(Token::RBracket);
                i += 1;
            }
            ',' => {
                out.push(Token::Comma);
                i += 1;
            }
            '\'' | '"' => {
                let quote = c;
                let start = i + 1;
                let mut j = start;
                while j < chars.len() && chars[j] != quote {
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
                let start = i;
                i += 1;
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric()
                        || chars[i] == '.'
                        || ((chars[i] == '-' || chars[i] == '+')
                            && matches!(chars[i - 1], 'e' | 'E')))
                {
                    i += 1;
                }
                let s: String = chars[start..i].iter().collect();
                out.push(Token::Number(
                    s.parse().map_err(|_| format!("`{s}` is not a number"))?,
                ));
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

/// A literal value.
#[derive(Debug, Clone, PartialEq)]
enum Literal {
    Number(f64),
    Str(String),
    Bool(bool),
}

impl Literal {
    fn expr(&self) -> Expr {
        match self {
            Literal::Number(v) => lit(*v),
            Literal::Str(s) => lit(s.clone()),
            Literal::Bool(b) => lit(*b),
        }
    }
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
    columns: Vec<String>,
}

fn keyword(t: Option<&Token>, word: &str) -> bool {
    matches!(t, Some(Token::Ident(s)) if s.eq_ignore_ascii_case(word))
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

    fn comparison(&mut self) -> Result<Expr, String> {
        let name = match self.next() {
            Some(Token::Ident(s)) => s,
            Some(t) => return Err(format!("expected a column name, found {t:?}")),
            None => return Err("empty filter".into()),
        };
        self.columns.push(name.clone());
        let c = col(name.as_str());
        if keyword(self.peek(), "in") {
            self.pos += 1;
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
            let series = if values.iter().all(|v| matches!(v, Literal::Number(_))) {
                Series::new(
                    "values".into(),
                    values
                        .iter()
                        .map(|v| if let Literal::Number(x) = v { *x } else { 0.0 })
                        .collect::<Vec<_>>(),
                )
            } else if values.iter().all(|v| matches!(v, Literal::Str(_))) {
                Series::new(
                    "values".into(),
                    values
                        .iter()
                        .map(|v| {
                            if let Literal::Str(x) = v {
                                x.clone()
                            } else {
                                String::new()
                            }
                        })
                        .collect::<Vec<_>>(),
                )
            } else {
                return Err("a list must hold only numbers or only quoted texts".into());
            };
            return Ok(c.is_in(lit(series).implode(true), false));
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
            return Ok(if negate { c.is_not_null() } else { c.is_null() });
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
        let value = self.literal()?.expr();
        Ok(match op.as_str() {
            "==" | "=" => c.eq(value),
            "!=" => c.neq(value),
            "<" => c.lt(value),
            "<=" => c.lt_eq(value),
            ">" => c.gt(value),
            ">=" => c.gt_eq(value),
            other => return Err(format!("`{other}` is not a comparison")),
        })
    }
}

/// A parsed filter: its polars expression and the columns it reads.
#[derive(Debug, Clone)]
pub struct Filter {
    /// The text as written.
    pub text: String,
    /// The predicate (rows where it is null are excluded).
    pub expr: Expr,
    /// Columns referenced.
    pub columns: Vec<String>,
}

/// Parses one filter.
pub fn parse(text: &str) -> Result<Filter, CohortError> {
    let err = |message: String| CohortError::Filter {
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

    fn frame() -> DataFrame {
        df!(
            "age" => [17i64, 18, 65, 80, 90],
            "status" => ["elective", "urgent", "emergent", "elective", "urgent"],
            "adi" => [Some(10.0), None, Some(50.0), Some(99.0), Some(3.0)],
        )
        .unwrap()
    }

    fn count(text: &str) -> usize {
        let f = parse(text).unwrap();
        frame().lazy().filter(f.expr).collect().unwrap().height()
    }

    #[test]
    fn comparisons_lists_nulls_and_logic() {
        assert_eq!(count("age >= 18"), 4);
        assert_eq!(count("age > 18 and status != 'urgent'"), 2);
        assert_eq!(count("status in ['urgent', \"emergent\"]"), 3);
        assert_eq!(count("age in [17, 90]"), 2);
        assert_eq!(count("adi is null"), 1);
        assert_eq!(count("adi is not null && (age < 70 || age == 90)"), 3);
        assert_eq!(count("not (age < 65)"), 3);
        assert_eq!(count("age >= -1.5e1"), 5);
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
            "",
        ] {
            let e = parse(bad).unwrap_err().to_string();
            assert!(e.contains("filter"), "{bad}: {e}");
        }
        assert_eq!(
            parse("age >= 18 and female == 1").unwrap().columns,
            vec!["age", "female"]
        );
    }
}
