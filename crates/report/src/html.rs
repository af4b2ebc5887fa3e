//! index.html: one self-contained page (inline CSS and SVG, no scripts, no
//! network; a Content-Security-Policy forbids loading anything), rendered
//! from [`ReportView`] by a minijinja template with HTML auto-escaping, so
//! every string from data or config is escaped. The SVG figures are inserted
//! as they are: plotters escapes the text it writes into them.

use minijinja::{AutoEscape, Environment, Value, context};

use crate::ReportError;
use crate::view::ReportView;

const TEMPLATE: &str = include_str!("../templates/index.html");

/// Renders the page.
pub fn html(view: &ReportView, min_cell: usize) -> Result<String, ReportError> {
    let mut env = Environment::new();
    env.set_auto_escape_callback(|_| AutoEscape::Html);
    env.add_template("index.html", TEMPLATE)
        .map_err(|e| ReportError::Template(e.to_string()))?;
    let t = env
        .get_template("index.html")
        .map_err(|e| ReportError::Template(e.to_string()))?;
    t.render(context! { r => Value::from(minijinja::value::Serde(view)), min_cell => min_cell })
        .map_err(|e| ReportError::Template(e.to_string()))
}
