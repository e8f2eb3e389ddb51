//! The headers against the Rust definitions, both ways: every function,
//! callback type, structure and constant declared in `vmspace.h` and
//! `vmspace/vmem.h` is defined on the Rust side with the same types, and
//! every one defined is declared. (The C side of the check, compiled by
//! `capi/ctest`, assigns each function to a pointer of its Rust type and
//! asserts layouts and values.)
//!
//! The parser reads the headers' own disciplined C: one declaration per
//! statement, no macros in declarations but the `VMSPACE_*_DECLS` pair.

use std::collections::BTreeMap;

use vmspace_capi::ctypes::{CALLBACKS, CONSTS, STRUCTS};
use vmspace_capi::decl::Signature;
use vmspace_capi::{NATIVE, VMEM};

/// A function or callback: return type and argument types, Rust spelling.
type Sig = (String, Vec<String>);

#[derive(Default, Debug)]
struct Header {
    fns: BTreeMap<String, Sig>,
    callbacks: BTreeMap<String, Sig>,
    structs: BTreeMap<String, Vec<(String, String)>>,
    opaque: BTreeMap<String, Vec<(String, String)>>,
    consts: BTreeMap<String, u64>,
}

fn read(name: &str) -> String {
    let path = format!("{}/include/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn strip_comments(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find("/*") {
        out.push_str(&rest[..i]);
        let end = rest[i..].find("*/").expect("closed comment") + i + 2;
        rest = &rest[end..];
    }
    out.push_str(rest);
    out.lines().map(|l| l.split("//").next().unwrap_or("")).collect::<Vec<_>>().join("\n")
}

fn squeeze(s: &str) -> String {
    s.chars().filter(|c| !c.is_whitespace()).collect()
}

fn tokens(s: &str) -> Vec<String> {
    s.replace('*', " * ").split_whitespace().map(String::from).collect()
}

const C_WORDS: &[&str] = &["int", "char", "void", "unsigned", "signed", "long", "short", "const"];

/// A C type (its tokens, without a name) in the Rust spelling the
/// definitions use, squeezed.
fn rust_type(toks: &[String], callbacks: &[String]) -> String {
    if toks == ["..."] {
        return "...".into();
    }
    let mut stars = toks.iter().filter(|t| *t == "*").count();
    let konst = toks.first().is_some_and(|t| t == "const");
    let base: Vec<&str> = toks
        .iter()
        .map(String::as_str)
        .filter(|t| !matches!(*t, "*" | "const" | "struct"))
        .collect();
    let base = match base.join(" ").as_str() {
        "int" => "c_int".to_string(),
        "unsigned int" => "c_uint".into(),
        "char" => "c_char".into(),
        "unsigned char" => "u8".into(),
        "void" if stars > 0 => "c_void".into(),
        "void" => "()".into(),
        "uint64_t" => "u64".into(),
        "uint32_t" => "u32".into(),
        b => b.to_string(),
    };
    if stars > 0 && callbacks.contains(&base) {
        stars -= 1;
    }
    if stars == 0 {
        return base;
    }
    let inner = if konst { "*const" } else { "*mut" };
    format!("{}{inner}{base}", "*mut".repeat(stars - 1))
}

/// A parameter or field: its type tokens, its name dropped.
fn without_name(p: &str) -> Vec<String> {
    let t = tokens(p);
    let named = t.len() > 1
        && t.last().is_some_and(|l| {
            l.chars().all(|c| c.is_alphanumeric() || c == '_') && !C_WORDS.contains(&l.as_str())
        })
        && t[t.len() - 2] != "struct";
    if named {
        t[..t.len() - 1].to_vec()
    } else {
        t
    }
}

fn params(list: &str, callbacks: &[String]) -> Vec<String> {
    let list = list.trim();
    if list == "void" || list.is_empty() {
        return vec![];
    }
    list.split(',').map(|p| rust_type(&without_name(p), callbacks)).collect()
}

/// The part of `s` inside the parentheses that open at `open`.
fn paren(s: &str, open: usize) -> (&str, usize) {
    let mut depth = 0;
    for (i, c) in s[open..].char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return (&s[open + 1..open + i], open + i + 1);
                }
            }
            _ => {}
        }
    }
    panic!("unbalanced: {s}");
}

fn value(v: &str) -> Option<u64> {
    let v = squeeze(v);
    if v == "(~(vmem_addr_t)0)" {
        return Some(usize::MAX as u64);
    }
    let v = v.trim_start_matches('(').trim_end_matches(')');
    v.split('|')
        .map(|p| match p.strip_prefix("0x") {
            Some(h) => u64::from_str_radix(h, 16).ok(),
            None => p.parse().ok(),
        })
        .try_fold(0, |acc, x| x.map(|x| acc | x))
}

fn parse(text: &str, callbacks: &[String]) -> Header {
    let mut h = Header::default();
    let text = strip_comments(text);
    let mut body = String::new();
    for line in text.lines() {
        let l = line.trim();
        if let Some(d) = l.strip_prefix("#define") {
            let mut it = d.trim().splitn(2, char::is_whitespace);
            let name = it.next().unwrap_or_default();
            let rest = it.next().unwrap_or("").trim();
            if rest.is_empty() || name.ends_with("_DECLS") {
                continue;
            }
            let v = value(rest).unwrap_or_else(|| panic!("#define {name}: unparsed {rest:?}"));
            h.consts.insert(name.into(), v);
        } else if !l.starts_with('#') {
            body.push_str(l);
            body.push('\n');
        }
    }
    let body = body
        .replace("VMSPACE_BEGIN_DECLS", "")
        .replace("VMSPACE_END_DECLS", "")
        .replace("__attribute__((aligned(16)))", "");
    let mut depth = 0;
    let mut stmt = String::new();
    let mut stmts = vec![];
    for c in body.chars() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ';' if depth == 0 => {
                stmts.push(
                    std::mem::take(&mut stmt).split_whitespace().collect::<Vec<_>>().join(" "),
                );
                continue;
            }
            _ => {}
        }
        stmt.push(c);
    }
    assert!(squeeze(&stmt).is_empty(), "trailing text: {stmt}");
    for s in stmts {
        if let Some(open) = s.find('{') {
            let close = s.rfind('}').expect("closed struct");
            let head = tokens(&s[..open]);
            let name = head.last().expect("a struct tag").clone();
            let fields = s[open + 1..close]
                .split(';')
                .filter(|f| !f.trim().is_empty())
                .map(|f| {
                    let f = f.trim();
                    let (f, array) = match f.find('[') {
                        Some(i) => (&f[..i], &f[i..]),
                        None => (f, ""),
                    };
                    let t = tokens(f);
                    let (ty, field) = t.split_at(t.len() - 1);
                    (field[0].clone(), format!("{}{array}", rust_type(ty, callbacks)))
                })
                .collect();
            let opaque = head.first().is_some_and(|t| t == "typedef");
            if opaque { &mut h.opaque } else { &mut h.structs }.insert(name, fields);
        } else if let Some(rest) = s.strip_prefix("typedef ") {
            let Some(open) = rest.find('(') else { continue }; // a plain typedef
            let (inner, after) = paren(rest, open);
            let (ret, name, args) = if rest[after..].trim_start().starts_with('(') {
                // typedef RET(NAME)(ARGS)
                let a = after + rest[after..].find('(').unwrap_or(0);
                (rest[..open].to_string(), inner.trim().to_string(), paren(rest, a).0)
            } else {
                // typedef RET NAME(ARGS)
                let t = tokens(&rest[..open]);
                let (ret, name) = t.split_at(t.len() - 1);
                (ret.join(" "), name[0].clone(), inner)
            };
            let ret = rust_type(&tokens(&ret), callbacks);
            h.callbacks.insert(name, (ret, params(args, callbacks)));
        } else if let Some(open) = s.find('(') {
            let t = tokens(&s[..open]);
            let (ret, name) = t.split_at(t.len() - 1);
            let ret = rust_type(ret, callbacks);
            h.fns.insert(name[0].clone(), (ret, params(paren(&s, open).0, callbacks)));
        } else {
            panic!("unparsed declaration: {s}");
        }
    }
    h
}

fn rust_sigs(list: &[Signature]) -> BTreeMap<String, Sig> {
    list.iter()
        .map(|s| (s.name.into(), (squeeze(s.ret), s.args.iter().map(|a| squeeze(a)).collect())))
        .collect()
}

/// Both maps equal, or a failure naming each entry missing, extra or
/// different.
fn assert_same<V: PartialEq + std::fmt::Debug>(
    what: &str,
    declared: &BTreeMap<String, V>,
    defined: &BTreeMap<String, V>,
) {
    let mut diffs = vec![];
    for (k, v) in declared {
        match defined.get(k) {
            None => diffs.push(format!("{k}: declared in the header, not defined in Rust")),
            Some(d) if d != v => diffs.push(format!("{k}: header {v:?}, Rust {d:?}")),
            Some(_) => {}
        }
    }
    for k in defined.keys().filter(|k| !declared.contains_key(*k)) {
        diffs.push(format!("{k}: defined in Rust, not declared in the header"));
    }
    assert!(diffs.is_empty(), "{what}:\n{}", diffs.join("\n"));
}

fn headers() -> (Header, Header) {
    let callbacks: Vec<String> = CALLBACKS.iter().map(|c| c.name.to_string()).collect();
    (parse(&read("vmspace.h"), &callbacks), parse(&read("vmspace/vmem.h"), &callbacks))
}

#[test]
fn functions_match_both_ways() {
    let (native, vmem) = headers();
    assert_same("vmspace.h functions", &native.fns, &rust_sigs(NATIVE));
    assert_same("vmspace/vmem.h functions", &vmem.fns, &rust_sigs(VMEM));
}

#[test]
fn callback_types_match_both_ways() {
    let (native, vmem) = headers();
    let mut declared = native.callbacks;
    declared.extend(vmem.callbacks);
    assert_same("callback types", &declared, &rust_sigs(CALLBACKS));
}

#[test]
fn structures_match_both_ways() {
    let (native, vmem) = headers();
    assert!(vmem.structs.is_empty(), "vmem.h declares no open structures");
    let defined: BTreeMap<String, Vec<(String, String)>> = STRUCTS
        .iter()
        .map(|s| {
            (s.name.into(), s.fields.iter().map(|(f, t, _)| (f.to_string(), squeeze(t))).collect())
        })
        .collect();
    assert_same("structures", &native.structs, &defined);
    // vmem_t: opaque storage of VMEM_STORAGE bytes.
    let storage = vmem.opaque.get("vmem").expect("struct vmem");
    assert_eq!(storage, &vec![("vm_opaque".to_string(), "u8[VMEM_STORAGE]".to_string())]);
}

#[test]
fn constants_match_both_ways() {
    let (native, vmem) = headers();
    let mut declared = native.consts;
    for (k, v) in vmem.consts {
        assert!(declared.insert(k.clone(), v).is_none(), "{k} defined twice");
    }
    let defined: BTreeMap<String, u64> = CONSTS.iter().map(|c| (c.name.into(), c.value)).collect();
    assert_same("constants", &declared, &defined);
}

#[test]
fn the_parser_reads_what_it_must() {
    let cbs = vec!["cb_t".to_string()];
    let h = parse(
        "#define A 0x10\n#define B (1 | 0x2)\ntypedef int(cb_t)(void *, size_t, int, uintptr_t *);\n\
         struct s { const char *n; unsigned int u; };\n\
         int f(struct s *p, cb_t *c, const struct s *q, int **pp);\nvoid g(void);",
        &cbs,
    );
    assert_eq!(h.consts["A"], 16);
    assert_eq!(h.consts["B"], 3);
    assert_eq!(h.callbacks["cb_t"].1, ["*mutc_void", "size_t", "c_int", "*mutuintptr_t"]);
    assert_eq!(
        h.structs["s"],
        [("n".into(), "*constc_char".into()), ("u".into(), "c_uint".into())]
    );
    assert_eq!(h.fns["f"].1, ["*muts", "cb_t", "*consts", "*mut*mutc_int"]);
    assert_eq!(h.fns["g"], ("()".to_string(), vec![]));
}

#[test]
fn the_kernel_exports_every_native_function() {
    let path = format!("{}/../kernel/builtin/capi_exports.c", env!("CARGO_MANIFEST_DIR"));
    let c = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    // Every export line in the namespace, none without it (a stray
    // EXPORT_SYMBOL_GPL would slip past a parse of the one form).
    let exports: Vec<&str> =
        c.lines().map(str::trim).filter(|l| l.starts_with("EXPORT_")).collect();
    let exported: std::collections::BTreeSet<&str> = exports
        .iter()
        .map(|l| {
            l.strip_prefix("EXPORT_SYMBOL_NS_GPL(")
                .and_then(|l| l.strip_suffix(", \"VMSPACE\");"))
                .unwrap_or_else(|| panic!("{path}: not in the VMSPACE namespace: {l}"))
        })
        .collect();
    assert_eq!(exported.len(), exports.len(), "{path}: a function exported twice");
    let defined: std::collections::BTreeSet<&str> = NATIVE.iter().map(|s| s.name).collect();
    assert_eq!(exported, defined, "kernel/builtin/capi_exports.c against vmspace.h's functions");
}
