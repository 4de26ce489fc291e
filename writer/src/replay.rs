//! What a file sink's statements leave in TDengine: parses the INSERTs the writer emits and
//! applies them the way TDengine does (same table and timestamp overwrite), giving the target's
//! content without a server. Used by `verify` against a file target and by the end-to-end tests.

use std::collections::BTreeMap;
use std::fmt;

/// A value as written in SQL.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Null,
    /// Numbers keep their text: `1.5`, `-3`, `18446744073709551615`, `1e300`.
    Number(String),
    Bool(bool),
    Text(String),
}

impl fmt::Display for Literal {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Null => formatter.write_str("NULL"),
            Self::Number(text) => formatter.write_str(text),
            Self::Bool(flag) => write!(formatter, "{flag}"),
            Self::Text(text) => write!(formatter, "{text:?}"),
        }
    }
}

/// One child table: its tags and its rows by timestamp.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChildTable {
    pub super_table: String,
    pub tags: BTreeMap<String, Literal>,
    pub rows: BTreeMap<i64, BTreeMap<String, Literal>>,
}

/// The content of the target: child tables by name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Model {
    pub tables: BTreeMap<String, ChildTable>,
}

impl Model {
    /// Rows of the super table `super_table`, over all its child tables.
    pub fn rows(&self, super_table: &str) -> usize {
        self.tables
            .values()
            .filter(|table| table.super_table == super_table)
            .map(|table| table.rows.len())
            .sum()
    }

    /// Applies statements, one per line (DDL is skipped: it changes no rows).
    pub fn apply(&mut self, script: &str) -> Result<(), String> {
        for (number, line) in script.lines().enumerate() {
            let statement = line.trim().trim_end_matches(';');
            if statement.starts_with("INSERT INTO") {
                self.insert(statement)
                    .map_err(|e| format!("line {}: {e}", number + 1))?;
            }
        }
        Ok(())
    }

    fn insert(&mut self, statement: &str) -> Result<(), String> {
        let tokens = tokenize(statement)?;
        let mut at = Tokens {
            tokens: &tokens,
            position: 0,
        };
        at.word("INSERT")?;
        at.word("INTO")?;
        while !at.done() {
            let _database = at.identifier()?;
            at.punct('.')?;
            let child = at.identifier()?;
            at.word("USING")?;
            let _ = at.identifier()?;
            at.punct('.')?;
            let super_table = at.identifier()?;
            let tag_names = at.identifiers()?;
            at.word("TAGS")?;
            let tag_values = at.literals()?;
            let columns = at.identifiers()?;
            at.word("VALUES")?;
            let table = self
                .tables
                .entry(child.clone())
                .or_insert_with(|| ChildTable {
                    super_table: super_table.clone(),
                    ..Default::default()
                });
            if table.tags.is_empty() {
                table.tags = tag_names.into_iter().zip(tag_values).collect();
            }
            while at.peek_punct('(') {
                let values = at.literals()?;
                if values.len() != columns.len() {
                    return Err(format!(
                        "a row of {child} has {} values for {} columns",
                        values.len(),
                        columns.len()
                    ));
                }
                let Some(Literal::Number(timestamp)) = values.first() else {
                    return Err(format!("a row of {child} has no timestamp"));
                };
                let timestamp: i64 = timestamp
                    .parse()
                    .map_err(|_| format!("timestamp {timestamp:?}"))?;
                let row = columns
                    .iter()
                    .skip(1)
                    .cloned()
                    .zip(values.into_iter().skip(1))
                    .collect();
                // Same table, same timestamp: the new row replaces the old one.
                table.rows.insert(timestamp, row);
            }
        }
        Ok(())
    }
}

/// Every statement file of a file sink directory applied in the order they were written.
pub fn replay_directory(directory: &std::path::Path) -> Result<Model, String> {
    let mut files: Vec<_> = std::fs::read_dir(directory)
        .map_err(|e| format!("cannot read {}: {e}", directory.display()))?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "sql"))
        .collect();
    files.sort_by_key(|path| std::fs::metadata(path).and_then(|m| m.modified()).ok());
    let mut model = Model::default();
    for file in files {
        let script = std::fs::read_to_string(&file)
            .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        model
            .apply(written(&script))
            .map_err(|e| format!("{}: {e}", file.display()))?;
    }
    Ok(model)
}

/// The statements of a file sink's file that were written whole: each ends its line. A writer
/// killed while writing leaves its last statement cut short, without its line end; that batch
/// was not acknowledged (the sink syncs the file first), so it is written again, by the writer
/// that takes it over, and what it left is no part of the target.
fn written(script: &str) -> &str {
    script.rfind('\n').map_or("", |end| &script[..=end])
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Identifier(String),
    Word(String),
    Text(String),
    Punct(char),
}

fn tokenize(statement: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let mut chars = statement.chars().peekable();
    while let Some(&character) = chars.peek() {
        match character {
            c if c.is_whitespace() => {
                chars.next();
            }
            '`' => {
                chars.next();
                let name: String = chars.by_ref().take_while(|c| *c != '`').collect();
                tokens.push(Token::Identifier(name));
            }
            '\'' => {
                chars.next();
                tokens.push(Token::Text(unescape(&mut chars)?));
            }
            '(' | ')' | ',' | '.' => {
                chars.next();
                tokens.push(Token::Punct(character));
            }
            _ => {
                let mut word = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_whitespace()
                        || "(),`'".contains(c)
                        || (c == '.' && !word.starts_with(|f: char| f.is_ascii_digit() || f == '-'))
                    {
                        break;
                    }
                    word.push(c);
                    chars.next();
                }
                if word.is_empty() {
                    return Err(format!("unexpected {character:?}"));
                }
                tokens.push(Token::Word(word));
            }
        }
    }
    Ok(tokens)
}

/// The rest of a single-quoted literal, decoded like TDengine's `trimString`.
fn unescape(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Result<String, String> {
    let mut text = String::new();
    loop {
        match chars.next() {
            None => return Err("a string literal does not end".into()),
            Some('\'') if chars.peek() == Some(&'\'') => {
                chars.next();
                text.push('\'');
            }
            Some('\'') => return Ok(text),
            Some('\\') => match chars.next() {
                Some('n') => text.push('\n'),
                Some('r') => text.push('\r'),
                Some('t') => text.push('\t'),
                Some(c @ ('%' | '_' | 'x')) => {
                    text.push('\\');
                    text.push(c);
                }
                Some(c) => text.push(c),
                None => return Err("a string literal ends in a backslash".into()),
            },
            Some(c) => text.push(c),
        }
    }
}

struct Tokens<'a> {
    tokens: &'a [Token],
    position: usize,
}

impl Tokens<'_> {
    fn done(&self) -> bool {
        self.position >= self.tokens.len()
    }

    fn next(&mut self) -> Result<&Token, String> {
        let token = self
            .tokens
            .get(self.position)
            .ok_or("the statement ends early")?;
        self.position += 1;
        Ok(token)
    }

    fn word(&mut self, expected: &str) -> Result<(), String> {
        match self.next()? {
            Token::Word(word) if word.eq_ignore_ascii_case(expected) => Ok(()),
            other => Err(format!("expected {expected}, found {other:?}")),
        }
    }

    fn punct(&mut self, expected: char) -> Result<(), String> {
        match self.next()? {
            Token::Punct(c) if *c == expected => Ok(()),
            other => Err(format!("expected {expected:?}, found {other:?}")),
        }
    }

    fn peek_punct(&self, expected: char) -> bool {
        self.tokens.get(self.position) == Some(&Token::Punct(expected))
    }

    fn identifier(&mut self) -> Result<String, String> {
        match self.next()? {
            Token::Identifier(name) => Ok(name.clone()),
            other => Err(format!("expected an identifier, found {other:?}")),
        }
    }

    /// `(a, b, ...)` of identifiers.
    fn identifiers(&mut self) -> Result<Vec<String>, String> {
        self.list(|tokens| tokens.identifier())
    }

    /// `(v, w, ...)` of literals.
    fn literals(&mut self) -> Result<Vec<Literal>, String> {
        self.list(|tokens| match tokens.next()? {
            Token::Text(text) => Ok(Literal::Text(text.clone())),
            Token::Word(word) if word.eq_ignore_ascii_case("NULL") => Ok(Literal::Null),
            Token::Word(word) if word.eq_ignore_ascii_case("true") => Ok(Literal::Bool(true)),
            Token::Word(word) if word.eq_ignore_ascii_case("false") => Ok(Literal::Bool(false)),
            Token::Word(word) => Ok(Literal::Number(word.clone())),
            other => Err(format!("expected a value, found {other:?}")),
        })
    }

    fn list<T>(
        &mut self,
        mut item: impl FnMut(&mut Self) -> Result<T, String>,
    ) -> Result<Vec<T>, String> {
        self.punct('(')?;
        let mut items = Vec::new();
        if self.peek_punct(')') {
            self.position += 1;
            return Ok(items);
        }
        loop {
            items.push(item(self)?);
            match self.next()? {
                Token::Punct(',') => {}
                Token::Punct(')') => return Ok(items),
                other => return Err(format!("expected ',' or ')', found {other:?}")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replays_inserts_with_overwrites_like_tdengine() {
        let script = "CREATE STABLE IF NOT EXISTS `db`.`cpu` (`_ts` TIMESTAMP,`v` DOUBLE) TAGS (`host` NCHAR(16));\n\
            INSERT INTO `db`.`t_1` USING `db`.`cpu` (`host`) TAGS ('a,b') (`_ts`,`v`,`s`) VALUES (1,1.5,'it\\'s (x)')(-2,-1e300,NULL) `db`.`t_2` USING `db`.`cpu` (`host`) TAGS ('c') (`_ts`,`v`,`s`) VALUES (1,2.0,'\\\\n')\n\
            INSERT INTO `db`.`t_1` USING `db`.`cpu` (`host`) TAGS ('a,b') (`_ts`,`v`,`s`) VALUES (1,9.5,NULL)";
        let mut model = Model::default();
        model.apply(script).unwrap();
        assert_eq!(model.rows("cpu"), 3);
        let t1 = &model.tables["t_1"];
        assert_eq!(t1.tags["host"], Literal::Text("a,b".into()));
        assert_eq!(
            t1.rows[&1]["v"],
            Literal::Number("9.5".into()),
            "same timestamp overwrites"
        );
        assert_eq!(t1.rows[&-2]["v"], Literal::Number("-1e300".into()));
        assert_eq!(
            model.tables["t_2"].rows[&1]["s"],
            Literal::Text("\\n".into())
        );
    }

    #[test]
    fn a_file_cut_short_by_a_crash_replays_its_whole_statements_only() {
        let directory = tempfile::tempdir().unwrap();
        let whole =
            "INSERT INTO `db`.`t` USING `db`.`st` (`h`) TAGS ('a') (`_ts`,`v`) VALUES (1,1.5);\n";
        let cut =
            "INSERT INTO `db`.`t` USING `db`.`st` (`h`) TAGS ('a') (`_ts`,`v`) VALUES (2,2.5)(3,";
        std::fs::write(directory.path().join("w.sql"), format!("{whole}{cut}")).unwrap();
        let model = replay_directory(directory.path()).unwrap();
        assert_eq!(
            model.tables["t"].rows.keys().copied().collect::<Vec<_>>(),
            [1]
        );
        // A whole line that does not parse is still an error.
        std::fs::write(directory.path().join("w.sql"), format!("{cut}\n")).unwrap();
        let error = replay_directory(directory.path()).unwrap_err();
        assert!(error.contains("line 1:"), "{error}");
    }

    #[test]
    fn a_malformed_insert_is_an_error_naming_the_line() {
        let error = Model::default()
            .apply("\nINSERT INTO `db`.`t` USING `db`.`st` (`h`) TAGS ('a') (`_ts`,`v`) VALUES (1)")
            .unwrap_err();
        assert!(error.starts_with("line 2:"), "{error}");
    }
}
