//! The static rules: a walk over the parsed template (minijinja's AST, through its
//! `unstable_machinery` feature) that finds what a template would do in a Python runtime
//! without running it there. The AST rather than the source tokens, because the attacks
//! are structural: `x|attr(name)`, `x[a ~ b]`, a branch whose *condition* reads message
//! content and whose *body* emits prose — a token stream cannot tell a condition from a
//! body, or a string that is looked up from a string that is printed. String constants
//! arrive already unescaped (`"\x5f\x5fclass\x5f\x5f"` is `__class__`), and the walk
//! folds the ways a name is rebuilt from pieces (`~`, `+`, `join`, `format`, `replace`,
//! `%`, reversal, and `set` variables holding such constants) before judging it.
//!
//! Each observation names its rule, a byte range in the template and a message; the
//! `rules::template` family turns them into findings.

use std::collections::{HashMap, HashSet};

use minijinja::machinery::ast::{self, CallArg, CallType, Expr, Stmt};
use minijinja::machinery::Span;
use minijinja::value::ValueKind;

use super::text::{self, PROSE_WORDS};
use crate::registry::Rule;

/// What the static rules saw at one place in the template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observation {
    pub rule: Rule,
    /// Byte range in the template.
    pub offset: usize,
    pub len: usize,
    pub message: String,
}

/// Everything the walk learned.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Scan {
    pub observations: Vec<Observation>,
    /// The template reads `add_generation_prompt`.
    pub reads_generation_prompt: bool,
    /// Every piece of literal text (raw text between tags, string constants) with its
    /// byte offset, for the rules that read what a template says.
    pub literals: Vec<(usize, String)>,
}

/// Attribute names that reach CPython internals (frames, globals, the class hierarchy).
const INTERNAL_NAMES: &[&str] = &[
    "mro",
    "gi_frame",
    "gi_code",
    "gi_yieldfrom",
    "cr_frame",
    "cr_code",
    "cr_await",
    "ag_frame",
    "ag_code",
    "f_globals",
    "f_locals",
    "f_builtins",
    "f_back",
    "f_code",
    "tb_frame",
    "tb_next",
    "func_globals",
    "func_code",
    "co_code",
    "im_func",
    "im_self",
];

/// A name whose lookup walks Python's object model: dunders, underscore-private names
/// (Jinja's sandbox refuses every `_` attribute), frame and generator attributes.
fn is_internal(name: &str) -> bool {
    let name = name.trim();
    name.starts_with('_') || INTERNAL_NAMES.contains(&name)
}

/// Names that only serve to run code: modules and builtins.
const CODE_NAMES: &[&str] = &[
    "os",
    "subprocess",
    "sys",
    "builtins",
    "importlib",
    "eval",
    "exec",
    "execfile",
    "compile",
    "getattr",
    "setattr",
    "delattr",
    "globals",
    "locals",
    "vars",
    "open",
    "breakpoint",
    "pty",
    "socket",
    "shutil",
    "ctypes",
    "pickle",
    "marshal",
    "posix",
];

/// Methods that run programs or load modules.
const CODE_METHODS: &[&str] = &[
    "popen",
    "system",
    "spawn",
    "spawnl",
    "spawnlp",
    "spawnv",
    "spawnve",
    "spawnvp",
    "execl",
    "execle",
    "execlp",
    "execv",
    "execve",
    "execvp",
    "fork",
    "forkpty",
    "check_output",
    "check_call",
    "getoutput",
    "getstatusoutput",
    "import_module",
    "load_module",
    "run_path",
    "eval",
    "exec",
];

fn is_code_name(name: &str) -> bool {
    let n = name.trim();
    CODE_NAMES.contains(&n) || CODE_METHODS.contains(&n)
}

/// Jinja globals whose attributes lead to Python internals (`lipsum.__globals__`,
/// `cycler.__init__`, `self._TemplateReference__context`).
const GADGETS: &[&str] = &[
    "cycler",
    "joiner",
    "namespace",
    "lipsum",
    "range",
    "dict",
    "self",
    "config",
    "request",
    "session",
    "url_for",
    "get_flashed_messages",
];

/// Message fields that hold what the user (or a tool) wrote.
const CONTENT_KEYS: &[&str] = &[
    "content",
    "text",
    "reasoning_content",
    "thinking",
    "reasoning",
];
/// Fields that are structure, not text: comparing them to a literal is how every
/// template lays out roles and content parts.
const STRUCTURE_KEYS: &[&str] = &[
    "type",
    "role",
    "name",
    "id",
    "tool_call_id",
    "function",
    "arguments",
];
/// Variables that hold the date by convention (`date_string` in Llama 3.x templates).
const TIME_VARS: &[&str] = &["date_string", "current_date", "today", "now"];

/// Folded strings longer than this are not folded further.
const MAX_FOLD: usize = 4096;

/// Walk `source` (parsed with the same syntax configuration the renderer uses).
pub fn scan(source: &str, tree: &Stmt<'_>) -> Scan {
    let mut walker = Walker {
        source,
        consts: HashMap::new(),
        defined: HashSet::new(),
        content_vars: HashSet::new(),
        time_vars: HashSet::new(),
        reporting: false,
        scan: Scan::default(),
        seen: HashSet::new(),
    };
    // Data flow first: which variables hold constants, message content or the date.
    // Iterate to a fixed point (bounded: each round can only add names).
    for _ in 0..8 {
        let before = (
            walker.consts.len(),
            walker.content_vars.len(),
            walker.time_vars.len(),
        );
        walker.stmt(tree);
        if before
            == (
                walker.consts.len(),
                walker.content_vars.len(),
                walker.time_vars.len(),
            )
        {
            break;
        }
    }
    walker.reporting = true;
    walker.stmt(tree);
    let mut scan = walker.scan;
    scan.observations.sort_by_key(|o| (o.offset, o.rule));
    scan
}

struct Walker<'s> {
    source: &'s str,
    /// `set` variables bound to a constant string.
    consts: HashMap<String, String>,
    /// Names the template binds itself (set, for, macro).
    defined: HashSet<String>,
    content_vars: HashSet<String>,
    time_vars: HashSet<String>,
    reporting: bool,
    scan: Scan,
    seen: HashSet<(Rule, usize)>,
}

impl<'s> Walker<'s> {
    fn report(&mut self, rule: Rule, span: Span, message: String) {
        if !self.reporting {
            return;
        }
        let offset = span.start_offset as usize;
        if !self.seen.insert((rule, offset)) {
            return;
        }
        let len = (span.end_offset as usize).saturating_sub(offset);
        self.scan.observations.push(Observation {
            rule,
            offset,
            len,
            message,
        });
    }

    fn body(&mut self, stmts: &[Stmt<'_>]) {
        for s in stmts {
            self.stmt(s);
        }
    }

    fn stmt(&mut self, s: &Stmt<'_>) {
        match s {
            Stmt::Template(t) => self.body(&t.children),
            Stmt::EmitExpr(e) => self.expr(&e.expr),
            Stmt::EmitRaw(r) => {
                if self.reporting {
                    let at = r.span().start_offset as usize;
                    self.scan.literals.push((at, r.raw.to_string()));
                }
            }
            Stmt::Continue(_) | Stmt::Break(_) => {}
            Stmt::ForLoop(f) => {
                self.expr(&f.iter);
                if let Some(filter) = &f.filter_expr {
                    self.expr(filter);
                }
                let content = self.is_content(&f.iter);
                let time = self.is_time(&f.iter);
                self.bind(&f.target, None, content, time);
                self.body(&f.body);
                self.body(&f.else_body);
            }
            Stmt::IfCond(c) => {
                self.expr(&c.expr);
                self.branch(&c.expr, &c.true_body, &c.false_body, s);
                self.body(&c.true_body);
                self.body(&c.false_body);
            }
            Stmt::WithBlock(w) => {
                for (target, value) in &w.assignments {
                    self.expr(value);
                    self.assign(target, value);
                }
                self.body(&w.body);
            }
            Stmt::Set(set) => {
                self.expr(&set.expr);
                self.assign(&set.target, &set.expr);
            }
            Stmt::SetBlock(set) => {
                if let Some(filter) = &set.filter {
                    self.expr(filter);
                }
                self.bind(&set.target, None, false, false);
                self.body(&set.body);
            }
            Stmt::AutoEscape(a) => {
                self.expr(&a.enabled);
                self.body(&a.body);
            }
            Stmt::FilterBlock(f) => {
                self.expr(&f.filter);
                self.body(&f.body);
            }
            Stmt::Block(b) => self.body(&b.body),
            Stmt::Import(i) => {
                self.include(s, "import");
                self.expr(&i.expr);
            }
            Stmt::FromImport(i) => {
                self.include(s, "from … import");
                self.expr(&i.expr);
            }
            Stmt::Extends(e) => {
                self.include(s, "extends");
                self.expr(&e.name);
            }
            Stmt::Include(i) => {
                self.include(s, "include");
                self.expr(&i.name);
            }
            Stmt::Macro(m) => {
                self.defined.insert(m.name.to_string());
                for a in &m.args {
                    self.bind(a, None, false, false);
                }
                for d in &m.defaults {
                    self.expr(d);
                }
                self.body(&m.body);
            }
            Stmt::CallBlock(c) => {
                self.call(&c.call, c.call.span());
                self.body(&c.macro_decl.body);
            }
            Stmt::Do(d) => self.call(&d.call, d.call.span()),
        }
    }

    fn stmt_span(s: &Stmt<'_>) -> Option<Span> {
        Some(match s {
            Stmt::Import(x) => x.span(),
            Stmt::FromImport(x) => x.span(),
            Stmt::Extends(x) => x.span(),
            Stmt::Include(x) => x.span(),
            Stmt::IfCond(x) => x.span(),
            _ => return None,
        })
    }

    fn include(&mut self, s: &Stmt<'_>, what: &str) {
        if let Some(span) = Self::stmt_span(s) {
            self.report(
                Rule::TemplateInclude,
                span,
                format!("`{what}` loads another template: a chat template is one self-contained string, and in a runtime with a template loader this reads files"),
            );
        }
    }

    /// Bind the names in a `set`/`for` target.
    fn bind(&mut self, target: &Expr<'_>, constant: Option<String>, content: bool, time: bool) {
        match target {
            Expr::Var(v) => {
                let name = v.id.to_string();
                self.defined.insert(name.clone());
                if let Some(c) = constant {
                    self.consts.insert(name.clone(), c);
                }
                if content {
                    self.content_vars.insert(name.clone());
                }
                if time {
                    self.time_vars.insert(name);
                }
            }
            Expr::Tuple(t) => {
                for item in &t.items {
                    self.bind(item, None, content, time);
                }
            }
            // `set ns.attr = value`: the namespace attribute carries the taint.
            Expr::GetAttr(g) if content || time => {
                let key = format!("{}.{}", root_var(&g.expr).unwrap_or(""), g.name);
                if content {
                    self.content_vars.insert(key.clone());
                }
                if time {
                    self.time_vars.insert(key);
                }
            }
            _ => {}
        }
    }

    fn assign(&mut self, target: &Expr<'_>, value: &Expr<'_>) {
        let constant = self.fold(value, 0);
        let content = self.is_content(value);
        let time = self.is_time(value);
        self.bind(target, constant, content, time);
    }

    fn args(&mut self, args: &[CallArg<'_>]) {
        for a in args {
            match a {
                CallArg::Pos(e)
                | CallArg::Kwarg(_, e)
                | CallArg::PosSplat(e)
                | CallArg::KwargSplat(e) => self.expr(e),
            }
        }
    }

    fn expr(&mut self, e: &Expr<'_>) {
        match e {
            Expr::Var(v) => self.var(v.id, v.span()),
            Expr::Const(c) => self.constant(&c.value, c.span()),
            Expr::Slice(s) => {
                self.expr(&s.expr);
                for part in [&s.start, &s.stop, &s.step].into_iter().flatten() {
                    self.expr(part);
                }
                self.built_name(e);
            }
            Expr::UnaryOp(u) => self.expr(&u.expr),
            Expr::BinOp(b) => {
                self.expr(&b.left);
                self.expr(&b.right);
                if matches!(
                    b.op,
                    ast::BinOpKind::Concat | ast::BinOpKind::Add | ast::BinOpKind::Rem
                ) {
                    self.built_name(e);
                }
            }
            Expr::Compare(c) => {
                self.expr(&c.expr);
                for op in &c.ops {
                    self.expr(&op.expr);
                }
            }
            Expr::IfExpr(i) => {
                self.expr(&i.test_expr);
                self.expr(&i.true_expr);
                if let Some(f) = &i.false_expr {
                    self.expr(f);
                }
                self.inline_branch(i, e.span());
            }
            Expr::Filter(f) => {
                if let Some(inner) = &f.expr {
                    self.expr(inner);
                }
                self.args(&f.args);
                self.filter(f, e);
            }
            Expr::Test(t) => {
                self.expr(&t.expr);
                self.args(&t.args);
            }
            Expr::GetAttr(g) => {
                self.expr(&g.expr);
                self.access(&g.expr, g.name, e.span());
            }
            Expr::GetItem(g) => {
                self.expr(&g.expr);
                self.expr(&g.subscript_expr);
                self.item(g, e.span());
            }
            Expr::Call(c) => self.call(c, e.span()),
            Expr::List(l) => l.items.iter().for_each(|i| self.expr(i)),
            Expr::Tuple(t) => t.items.iter().for_each(|i| self.expr(i)),
            Expr::Map(m) => {
                m.keys.iter().for_each(|k| self.expr(k));
                m.values.iter().for_each(|v| self.expr(v));
            }
        }
    }

    fn var(&mut self, id: &str, span: Span) {
        if id == "add_generation_prompt" && self.reporting {
            self.scan.reads_generation_prompt = true;
        }
        if CODE_NAMES.contains(&id) && !self.defined.contains(id) {
            self.report(
                Rule::TemplateCodeExecution,
                span,
                format!("names `{id}`, which exists in a template only to run code or reach Python's builtins"),
            );
        }
        if id.starts_with("__") && !self.defined.contains(id) {
            self.report(
                Rule::TemplatePythonInternals,
                span,
                format!("names the Python internal `{id}`"),
            );
        }
    }

    /// A string constant: an escape that spells a plain character is obfuscation.
    fn constant(&mut self, value: &minijinja::Value, span: Span) {
        let Some(s) = value.as_str() else { return };
        if self.reporting {
            self.scan
                .literals
                .push((span.start_offset as usize, s.to_string()));
        }
        let raw = self
            .source
            .get(span.start_offset as usize..span.end_offset as usize)
            .unwrap_or("");
        if spells_plain_character(raw) {
            self.report(
                Rule::TemplateObfuscatedName,
                span,
                format!(
                    "a string literal spells plain characters with escapes ({}), which only serves to hide a name: it reads {:?}",
                    raw.chars().take(40).collect::<String>(),
                    s.chars().take(60).collect::<String>()
                ),
            );
        }
        if let Some(name) = format_field_internal(s) {
            self.report(
                Rule::TemplatePythonInternals,
                span,
                format!("a format string reaches the Python internal `{name}` through a replacement field (the str.format sandbox escape, CVE-2024-56326)"),
            );
        }
    }

    /// A name rebuilt from pieces (`'__cla' ~ 'ss__'`, `['o','s']|join`, `'x'[::-1]`).
    fn built_name(&mut self, e: &Expr<'_>) {
        if let Some(folded) = self.fold(e, 0) {
            if is_internal(&folded) && folded.len() > 1 || is_code_name(&folded) {
                self.report(
                    Rule::TemplateObfuscatedName,
                    e.span(),
                    format!("rebuilds the name {folded:?} from pieces, the way sandbox escapes hide from scanners"),
                );
            }
        }
    }

    /// `base.name`, `base[name]` or `base|attr(name)` with a known name.
    fn access(&mut self, base: &Expr<'_>, name: &str, span: Span) {
        if is_internal(name) {
            self.report(
                Rule::TemplatePythonInternals,
                span,
                format!("reads the attribute `{name}`, which walks Python's object model (class hierarchy, globals, frames)"),
            );
        }
        if is_code_name(name) {
            self.report(
                Rule::TemplateCodeExecution,
                span,
                format!("reads `{name}`, an attribute that runs programs or loads modules"),
            );
        }
        if let Expr::Var(v) = base {
            if GADGETS.contains(&v.id) && !self.defined.contains(v.id) {
                self.report(
                    Rule::TemplateGadget,
                    span,
                    format!("reads an attribute of the Jinja global `{}`: such globals are Python objects whose attributes lead to the interpreter (`lipsum.__globals__`)", v.id),
                );
            }
        }
        if let Expr::Call(c) = base {
            if let CallType::Function(f) = c.identify_call() {
                if GADGETS.contains(&f) && is_internal(name) {
                    self.report(
                        Rule::TemplateGadget,
                        span,
                        format!("reads `{name}` of an object made by the Jinja global `{f}`"),
                    );
                }
            }
        }
    }

    fn item(&mut self, g: &ast::GetItem<'_>, span: Span) {
        let sub = &g.subscript_expr;
        match self.fold(sub, 0) {
            Some(name) => self.access(&g.expr, &name, span),
            None if builds_string(sub) => self.report(
                Rule::TemplateComputedAttribute,
                span,
                "looks up a member by a name computed from pieces, which no chat template needs and sandbox escapes use to hide names".into(),
            ),
            None => {}
        }
    }

    fn filter(&mut self, f: &ast::Filter<'_>, e: &Expr<'_>) {
        let base = f.expr.as_ref();
        match f.name {
            "attr" => {
                let name = f.args.first().and_then(|a| match a {
                    CallArg::Pos(x) => self.fold(x, 0),
                    _ => None,
                });
                self.report(
                    Rule::TemplateComputedAttribute,
                    e.span(),
                    format!(
                        "uses `|attr({})`, Jinja's attribute lookup by a computed name (the route of CVE-2025-27516); no chat template needs it",
                        name.as_deref().map_or("…".to_string(), |n| format!("{n:?}"))
                    ),
                );
                if let (Some(name), Some(base)) = (name, base) {
                    self.access(base, &name, e.span());
                }
            }
            "map" | "selectattr" | "rejectattr" | "sort" | "groupby" | "sum" | "unique" | "min"
            | "max" => {
                for (i, a) in f.args.iter().enumerate() {
                    let x = match a {
                        CallArg::Kwarg("attribute", x) => x,
                        CallArg::Pos(x)
                            if i == 0 && matches!(f.name, "selectattr" | "rejectattr") =>
                        {
                            x
                        }
                        _ => continue,
                    };
                    if let Some(name) = self.fold(x, 0) {
                        for part in name.split('.') {
                            if is_internal(part) || is_code_name(part) {
                                self.report(
                                    Rule::TemplatePythonInternals,
                                    e.span(),
                                    format!(
                                        "`|{}` reads the attribute {part:?} of every item",
                                        f.name
                                    ),
                                );
                            }
                        }
                    }
                }
            }
            "join" | "format" | "replace" | "reverse" | "string" | "lower" | "upper" => {
                self.built_name(e)
            }
            _ => {}
        }
    }

    fn call(&mut self, c: &ast::Call<'_>, span: Span) {
        self.expr(&c.expr);
        self.args(&c.args);
        match c.identify_call() {
            CallType::Function(name) if is_code_name(name) && !self.defined.contains(name) => {
                self.report(
                    Rule::TemplateCodeExecution,
                    span,
                    format!("calls `{name}`, which runs code or reaches Python's builtins"),
                );
            }
            CallType::Method(_, name) => {
                if CODE_METHODS.contains(&name) {
                    self.report(
                        Rule::TemplateCodeExecution,
                        span,
                        format!("calls the method `{name}`, which runs programs or loads modules"),
                    );
                }
                if matches!(name, "format" | "join" | "replace" | "format_map") {
                    if let Some(folded) = self.fold_call(c, 0) {
                        if is_internal(&folded) && folded.len() > 1 || is_code_name(&folded) {
                            self.report(
                                Rule::TemplateObfuscatedName,
                                span,
                                format!(
                                    "rebuilds the name {folded:?} from pieces with `.{name}()`"
                                ),
                            );
                        }
                    }
                }
            }
            _ => {}
        }
    }

    // ---- folding -------------------------------------------------------------------

    /// The constant string (or list of strings, joined) `e` evaluates to, when it can
    /// be known without running the template.
    fn fold(&self, e: &Expr<'_>, depth: usize) -> Option<String> {
        if depth > 32 {
            return None;
        }
        let out = match e {
            Expr::Const(c) => match c.value.kind() {
                ValueKind::String => c.value.as_str().map(str::to_string),
                ValueKind::Number => Some(c.value.to_string()),
                _ => None,
            },
            Expr::Var(v) => self.consts.get(v.id).cloned(),
            Expr::BinOp(b) => match b.op {
                ast::BinOpKind::Concat | ast::BinOpKind::Add => {
                    Some(self.fold(&b.left, depth + 1)? + &self.fold(&b.right, depth + 1)?)
                }
                ast::BinOpKind::Rem => {
                    let fmt = self.fold(&b.left, depth + 1)?;
                    let args = self.fold_items(&b.right, depth + 1)?;
                    Some(percent_format(&fmt, &args))
                }
                _ => None,
            },
            Expr::Filter(f) => {
                let base = f.expr.as_ref()?;
                let pos: Vec<Option<String>> = f
                    .args
                    .iter()
                    .map(|a| match a {
                        CallArg::Pos(x) => self.fold(x, depth + 1),
                        _ => None,
                    })
                    .collect();
                match f.name {
                    "join" => {
                        let items = self.fold_items(base, depth + 1)?;
                        let sep = pos.first().cloned().flatten().unwrap_or_default();
                        Some(items.join(&sep))
                    }
                    "replace" => {
                        let s = self.fold(base, depth + 1)?;
                        let from = pos.first()?.clone()?;
                        let to = pos.get(1)?.clone()?;
                        (!from.is_empty()).then(|| s.replace(&from, &to))
                    }
                    "reverse" => Some(self.fold(base, depth + 1)?.chars().rev().collect()),
                    "lower" => Some(self.fold(base, depth + 1)?.to_lowercase()),
                    "upper" => Some(self.fold(base, depth + 1)?.to_uppercase()),
                    "string" | "trim" => Some(self.fold(base, depth + 1)?.trim().to_string()),
                    "format" => {
                        let fmt = self.fold(base, depth + 1)?;
                        let args: Option<Vec<String>> = pos.into_iter().collect();
                        Some(percent_format(&fmt, &args?))
                    }
                    _ => None,
                }
            }
            Expr::Slice(s) => {
                let base = self.fold(&s.expr, depth + 1)?;
                let step = match &s.step {
                    Some(x) => x.as_const().and_then(|v| v.as_i64())?,
                    None => 1,
                };
                if s.start.is_some() || s.stop.is_some() {
                    return None;
                }
                match step {
                    -1 => Some(base.chars().rev().collect()),
                    1 => Some(base),
                    _ => None,
                }
            }
            Expr::Call(c) => self.fold_call(c, depth + 1),
            Expr::List(_) | Expr::Tuple(_) => Some(self.fold_items(e, depth + 1)?.concat()),
            _ => None,
        };
        out.filter(|s| s.len() <= MAX_FOLD)
    }

    /// A list or tuple of constant strings.
    fn fold_items(&self, e: &Expr<'_>, depth: usize) -> Option<Vec<String>> {
        let items = match e {
            Expr::List(l) => &l.items,
            Expr::Tuple(t) => &t.items,
            other => return Some(vec![self.fold(other, depth)?]),
        };
        items.iter().map(|i| self.fold(i, depth + 1)).collect()
    }

    /// `'sep'.join([...])`, `'{}{}'.format(a, b)`, `s.replace(a, b)` with constants.
    fn fold_call(&self, c: &ast::Call<'_>, depth: usize) -> Option<String> {
        let CallType::Method(base, name) = c.identify_call() else {
            return None;
        };
        let args: Vec<Option<String>> = c
            .args
            .iter()
            .map(|a| match a {
                CallArg::Pos(x) => self.fold(x, depth + 1),
                _ => None,
            })
            .collect();
        let this = self.fold(base, depth + 1)?;
        match name {
            "join" => {
                let CallArg::Pos(items) = c.args.first()? else {
                    return None;
                };
                Some(self.fold_items(items, depth + 1)?.join(&this))
            }
            "format" => {
                let args: Option<Vec<String>> = args.into_iter().collect();
                Some(brace_format(&this, &args?))
            }
            "replace" => {
                let from = args.first()?.clone()?;
                let to = args.get(1)?.clone()?;
                (!from.is_empty()).then(|| this.replace(&from, &to))
            }
            "lower" => Some(this.to_lowercase()),
            "upper" => Some(this.to_uppercase()),
            "strip" => Some(this.trim().to_string()),
            _ => None,
        }
    }

    // ---- behaviour -----------------------------------------------------------------

    /// Whether `e` carries message content (the text a user or tool wrote).
    fn is_content(&self, e: &Expr<'_>) -> bool {
        match e {
            Expr::Var(v) => self.content_vars.contains(v.id),
            Expr::GetAttr(g) => {
                if STRUCTURE_KEYS.contains(&g.name) {
                    return false;
                }
                if let Some(root) = root_var(&g.expr) {
                    if self.content_vars.contains(&format!("{root}.{}", g.name)) {
                        return true;
                    }
                }
                CONTENT_KEYS.contains(&g.name) || self.is_content(&g.expr)
            }
            Expr::GetItem(g) => match self.fold(&g.subscript_expr, 0) {
                Some(k) if STRUCTURE_KEYS.contains(&k.as_str()) => false,
                Some(k) if CONTENT_KEYS.contains(&k.as_str()) => true,
                _ => self.is_content(&g.expr),
            },
            Expr::Filter(f) => f.expr.as_ref().is_some_and(|x| self.is_content(x)),
            Expr::Slice(s) => self.is_content(&s.expr),
            Expr::Call(c) => match c.identify_call() {
                CallType::Method(base, _) => self.is_content(base),
                _ => false,
            },
            Expr::BinOp(b) => self.is_content(&b.left) || self.is_content(&b.right),
            Expr::IfExpr(i) => {
                self.is_content(&i.true_expr)
                    || i.false_expr.as_ref().is_some_and(|f| self.is_content(f))
            }
            _ => false,
        }
    }

    /// Whether `e` depends on the date or time.
    fn is_time(&self, e: &Expr<'_>) -> bool {
        match e {
            Expr::Var(v) => self.time_vars.contains(v.id) || TIME_VARS.contains(&v.id),
            Expr::Call(c) => {
                matches!(c.identify_call(), CallType::Function("strftime_now"))
                    || self.is_time(&c.expr)
                    || c.args.iter().any(|a| match a {
                        CallArg::Pos(x) | CallArg::Kwarg(_, x) => self.is_time(x),
                        _ => false,
                    })
            }
            // `strftime_now is defined` asks whether the runtime has a clock, not the time.
            Expr::Test(t) => {
                !matches!(t.name, "defined" | "undefined" | "none" | "string")
                    && self.is_time(&t.expr)
            }
            Expr::GetAttr(g) => {
                root_var(&g.expr)
                    .is_some_and(|r| self.time_vars.contains(&format!("{r}.{}", g.name)))
                    || self.is_time(&g.expr)
            }
            Expr::GetItem(g) => self.is_time(&g.expr) || self.is_time(&g.subscript_expr),
            Expr::Filter(f) => {
                f.expr.as_ref().is_some_and(|x| self.is_time(x))
                    || f.args.iter().any(|a| match a {
                        CallArg::Pos(x) => self.is_time(x),
                        _ => false,
                    })
            }
            Expr::Slice(s) => self.is_time(&s.expr),
            Expr::UnaryOp(u) => self.is_time(&u.expr),
            Expr::BinOp(b) => self.is_time(&b.left) || self.is_time(&b.right),
            Expr::Compare(c) => {
                self.is_time(&c.expr) || c.ops.iter().any(|o| self.is_time(&o.expr))
            }
            Expr::IfExpr(i) => {
                self.is_time(&i.test_expr)
                    || self.is_time(&i.true_expr)
                    || i.false_expr.as_ref().is_some_and(|f| self.is_time(f))
            }
            _ => false,
        }
    }

    /// A non-blank string literal (directly or through a constant variable).
    fn literal(&self, e: &Expr<'_>) -> Option<String> {
        let s = self.fold(e, 0)?;
        (!s.trim().is_empty()).then_some(s)
    }

    /// The literal a condition tests message content against, if it does.
    fn content_trigger(&self, cond: &Expr<'_>) -> Option<String> {
        match cond {
            Expr::UnaryOp(u) => self.content_trigger(&u.expr),
            Expr::BinOp(b) => match b.op {
                ast::BinOpKind::ScAnd | ast::BinOpKind::ScOr => self
                    .content_trigger(&b.left)
                    .or_else(|| self.content_trigger(&b.right)),
                ast::BinOpKind::Eq | ast::BinOpKind::Ne | ast::BinOpKind::In => {
                    self.compared(&b.left, &b.right)
                }
                _ => None,
            },
            Expr::Compare(c) => {
                let mut left = &c.expr;
                for op in &c.ops {
                    if let Some(t) = self.compared(left, &op.expr) {
                        return Some(t);
                    }
                    left = &op.expr;
                }
                None
            }
            Expr::Test(t) if matches!(t.name, "eq" | "equalto" | "==" | "in" | "sameas") => {
                let arg = t.args.first().and_then(|a| match a {
                    CallArg::Pos(x) => Some(x),
                    _ => None,
                })?;
                self.compared(&t.expr, arg)
            }
            Expr::Call(c) => match c.identify_call() {
                CallType::Method(base, m)
                    if matches!(
                        m,
                        "startswith"
                            | "endswith"
                            | "find"
                            | "rfind"
                            | "count"
                            | "index"
                            | "__contains__"
                    ) && self.is_content(base) =>
                {
                    c.args.iter().find_map(|a| match a {
                        CallArg::Pos(x) => self.literal(x),
                        _ => None,
                    })
                }
                _ => None,
            },
            _ => None,
        }
    }

    fn compared(&self, a: &Expr<'_>, b: &Expr<'_>) -> Option<String> {
        if self.is_content(a) {
            if let Some(l) = self.literal(b) {
                return Some(l);
            }
        }
        if self.is_content(b) {
            return self.literal(a);
        }
        None
    }

    /// An `{% if %}` on message content or on the date whose branches emit prose.
    fn branch(&mut self, cond: &Expr<'_>, then: &[Stmt<'_>], other: &[Stmt<'_>], s: &Stmt<'_>) {
        if !self.reporting {
            return;
        }
        let span = Self::stmt_span(s).unwrap_or_else(|| cond.span());
        let mut texts = Vec::new();
        for st in then.iter().chain(other) {
            self.literal_text(st, &mut texts);
        }
        self.judge_branch(cond, span, &texts);
    }

    fn inline_branch(&mut self, i: &ast::IfExpr<'_>, span: Span) {
        if !self.reporting {
            return;
        }
        let mut texts = Vec::new();
        self.value_literals(&i.true_expr, &mut texts);
        if let Some(f) = &i.false_expr {
            self.value_literals(f, &mut texts);
        }
        self.judge_branch(&i.test_expr, span, &texts);
    }

    fn judge_branch(&mut self, cond: &Expr<'_>, span: Span, texts: &[String]) {
        let prose = texts.iter().find(|t| {
            text::prose_words(t) >= PROSE_WORDS
                || text::payloads(t).iter().any(|p| p.what == "a link")
        });
        let Some(prose) = prose else { return };
        let shown: String = prose.trim().chars().take(100).collect();
        if let Some(trigger) = self.content_trigger(cond) {
            self.report(
                Rule::TemplateHiddenInstruction,
                span,
                format!(
                    "when message content matches {:?}, the template emits text the conversation never contained: {shown:?}",
                    trigger.chars().take(60).collect::<String>()
                ),
            );
        }
        if self.is_time(cond) {
            self.report(
                Rule::TemplateTimeTrigger,
                span,
                format!("a branch on the date or time emits {shown:?}: the template behaves differently after some day"),
            );
        }
    }

    /// Literal text a statement (and what it contains) emits or stores in a variable.
    fn literal_text(&self, s: &Stmt<'_>, out: &mut Vec<String>) {
        match s {
            Stmt::EmitRaw(r) => out.push(r.raw.to_string()),
            Stmt::EmitExpr(e) => self.value_literals(&e.expr, out),
            Stmt::Set(set) => self.value_literals(&set.expr, out),
            Stmt::SetBlock(b) => b.body.iter().for_each(|x| self.literal_text(x, out)),
            Stmt::IfCond(c) => c
                .true_body
                .iter()
                .chain(&c.false_body)
                .for_each(|x| self.literal_text(x, out)),
            Stmt::ForLoop(f) => f
                .body
                .iter()
                .chain(&f.else_body)
                .for_each(|x| self.literal_text(x, out)),
            Stmt::WithBlock(w) => w.body.iter().for_each(|x| self.literal_text(x, out)),
            Stmt::FilterBlock(f) => f.body.iter().for_each(|x| self.literal_text(x, out)),
            Stmt::AutoEscape(a) => a.body.iter().for_each(|x| self.literal_text(x, out)),
            _ => {}
        }
    }

    /// String constants that flow into a value (not those it is compared with or that
    /// select a member).
    fn value_literals(&self, e: &Expr<'_>, out: &mut Vec<String>) {
        match e {
            Expr::Const(c) => {
                if let Some(s) = c.value.as_str() {
                    out.push(s.to_string());
                }
            }
            Expr::Var(v) => {
                if let Some(s) = self.consts.get(v.id) {
                    out.push(s.clone());
                }
            }
            Expr::BinOp(b)
                if matches!(
                    b.op,
                    ast::BinOpKind::Concat | ast::BinOpKind::Add | ast::BinOpKind::Rem
                ) =>
            {
                self.value_literals(&b.left, out);
                self.value_literals(&b.right, out);
            }
            Expr::IfExpr(i) => {
                self.value_literals(&i.true_expr, out);
                if let Some(f) = &i.false_expr {
                    self.value_literals(f, out);
                }
            }
            Expr::Filter(f) => {
                if let Some(x) = &f.expr {
                    self.value_literals(x, out);
                }
            }
            Expr::List(l) => l.items.iter().for_each(|i| self.value_literals(i, out)),
            _ => {}
        }
    }
}

/// The variable at the root of `a.b.c`.
fn root_var<'a>(e: &'a Expr<'_>) -> Option<&'a str> {
    match e {
        Expr::Var(v) => Some(v.id),
        Expr::GetAttr(g) => root_var(&g.expr),
        Expr::GetItem(g) => root_var(&g.expr),
        _ => None,
    }
}

/// Whether an expression holds a string literal among the operands of `+` and `%`.
fn has_string_literal(e: &Expr<'_>) -> bool {
    match e {
        Expr::Const(c) => c.value.kind() == ValueKind::String,
        Expr::BinOp(b) => has_string_literal(&b.left) || has_string_literal(&b.right),
        _ => false,
    }
}

/// Whether an expression builds a string from pieces (`+` and `%` only when a string
/// literal takes part: `messages[loop.index0 + 1]` is arithmetic).
fn builds_string(e: &Expr<'_>) -> bool {
    match e {
        Expr::BinOp(b) => match b.op {
            ast::BinOpKind::Concat => true,
            ast::BinOpKind::Add | ast::BinOpKind::Rem => has_string_literal(e),
            _ => false,
        },
        Expr::Filter(f) => matches!(
            f.name,
            "join" | "format" | "replace" | "reverse" | "string" | "lower" | "upper"
        ),
        Expr::Call(c) => matches!(
            c.identify_call(),
            CallType::Method(_, "join" | "format" | "replace" | "format_map")
        ),
        Expr::Slice(_) => true,
        _ => false,
    }
}

/// `'%s%s' % ('a', 'b')` and `'%s'|format(x)` with constant arguments.
fn percent_format(fmt: &str, args: &[String]) -> String {
    let mut out = String::new();
    let mut args = args.iter();
    let mut chars = fmt.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '%' {
            match chars.next() {
                Some('%') => out.push('%'),
                Some(_) => out.push_str(args.next().map_or("", String::as_str)),
                None => out.push('%'),
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// `'{}{}'.format('a', 'b')` and `'{0}{1}'` with constant arguments.
fn brace_format(fmt: &str, args: &[String]) -> String {
    let mut out = String::new();
    let mut next = 0;
    let mut rest = fmt;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        if let Some(stripped) = after.strip_prefix('{') {
            out.push('{');
            rest = stripped;
            continue;
        }
        let Some(close) = after.find('}') else {
            out.push_str(&rest[open..]);
            return out;
        };
        let field = &after[..close];
        let index = field.parse::<usize>().unwrap_or_else(|_| {
            next += 1;
            next - 1
        });
        out.push_str(args.get(index).map_or("", String::as_str));
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    out
}

/// A replacement field such as `{0.__class__}` or `{x._y}` in a format string.
fn format_field_internal(s: &str) -> Option<String> {
    let mut rest = s;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let close = after.find('}')?;
        let field = &after[..close];
        for part in field.split(['.', '[', ']', '!', ':']).skip(1) {
            if part.starts_with('_') || INTERNAL_NAMES.contains(&part) {
                return Some(part.to_string());
            }
        }
        rest = &after[close + 1..];
    }
    None
}

/// Whether the source of a string literal uses `\x`, `\u`, `\U`, `\N` or octal escapes to
/// write a letter, digit, underscore or dot.
fn spells_plain_character(raw: &str) -> bool {
    let bytes = raw.as_bytes();
    let mut i = 0;
    while i + 1 < bytes.len() {
        if bytes[i] != b'\\' {
            i += 1;
            continue;
        }
        let next = bytes[i + 1];
        let decoded = match next {
            b'x' => raw
                .get(i + 2..i + 4)
                .and_then(|h| u32::from_str_radix(h, 16).ok()),
            b'u' => raw
                .get(i + 2..i + 6)
                .and_then(|h| u32::from_str_radix(h, 16).ok()),
            b'U' => raw
                .get(i + 2..i + 10)
                .and_then(|h| u32::from_str_radix(h, 16).ok()),
            b'0'..=b'7' => {
                let digits: String = raw[i + 1..]
                    .chars()
                    .take(3)
                    .take_while(|c| ('0'..='7').contains(c))
                    .collect();
                u32::from_str_radix(&digits, 8).ok()
            }
            b'N' => return true,
            _ => None,
        };
        if let Some(c) = decoded.and_then(char::from_u32) {
            if c.is_ascii_alphanumeric() || c == '_' || c == '.' {
                return true;
            }
        }
        i += 2;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folding_helpers() {
        assert_eq!(
            percent_format("%s%s", &["__cla".into(), "ss__".into()]),
            "__class__"
        );
        assert_eq!(brace_format("{}{}", &["os".into(), "".into()]), "os");
        assert_eq!(brace_format("{1}{0}", &["b".into(), "a".into()]), "ab");
        assert_eq!(
            format_field_internal("{0.__class__}"),
            Some("__class__".into())
        );
        assert_eq!(format_field_internal("{name}: {value}"), None);
        assert!(spells_plain_character(r#""\x5f\x5fclass""#));
        assert!(!spells_plain_character(r#""line\n\t\"quoted\"""#));
        assert!(!spells_plain_character(r#""\u2581""#));
    }
}
