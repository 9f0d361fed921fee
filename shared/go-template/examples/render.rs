//! Renders a template file with JSON data: `cargo run --example render -- TEMPLATE [DATA.json]`.

use sluice_go_template::{TemplateSet, Value};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args.next().ok_or("usage: render TEMPLATE [DATA.json]")?;
    let text = std::fs::read_to_string(&path)?;
    let data = match args.next() {
        Some(data_path) => {
            Value::from_json(&serde_json::from_str(&std::fs::read_to_string(data_path)?)?)
        }
        None => Value::Nil,
    };
    let mut set = TemplateSet::new();
    set.parse(&path, &text)?;
    let out = set.execute(&path, &data)?;
    std::io::Write::write_all(&mut std::io::stdout(), out.as_bytes())?;
    Ok(())
}
