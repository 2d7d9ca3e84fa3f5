//! Server commands: TIME, SHUTDOWN, DBSIZE, ROLE, LASTSAVE, MODULE,
//! LOLWUT. INFO, CONFIG, COMMAND and DEBUG have files of their own.

use std::time::{SystemTime, UNIX_EPOCH};

use super::connection::container;
use super::flags::*;
use super::parse::is_keyword;
use super::{CommandSpec, Ctx, NO_KEYS};
use crate::error::{Error, Result};
use crate::persistence::SaveError;

pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec::new("time", 1, LOADING | STALE | FAST, NO_KEYS, time)
        .tips(&["nondeterministic_output"])
        .doc("server", "2.6.0", "Returns the server time.", "O(1)"),
    CommandSpec::new("shutdown", -1, ADMIN | NOSCRIPT | LOADING | STALE | NO_MULTI | ALLOW_BUSY, NO_KEYS, shutdown)
        .doc("server", "1.0.0", "Synchronously saves the database(s) to disk and shuts down the Redis server.", "O(N) when saving, where N is the total number of keys in all databases when saving data, otherwise O(1)"),
    CommandSpec::new("dbsize", 1, READONLY | FAST | WHOLE_KEYSPACE, NO_KEYS, dbsize)
        .acl(&["keyspace"])
        .tips(&["request_policy:all_shards", "response_policy:agg_sum"])
        .doc("server", "1.0.0", "Returns the number of keys in the database.", "O(1)"),
    CommandSpec::new("role", 1, NOSCRIPT | LOADING | STALE | FAST, NO_KEYS, role)
        .acl(&["admin", "dangerous"])
        .doc("server", "2.8.12", "Returns the replication role.", "O(1)"),
    CommandSpec::new("save", 1, ADMIN | NOSCRIPT | NO_ASYNC_LOADING | NO_MULTI, NO_KEYS, save)
        .doc("server", "1.0.0", "Synchronously saves the database(s) to disk.", "O(N) where N is the total number of keys in all databases"),
    CommandSpec::new("bgsave", -1, ADMIN | NOSCRIPT | NO_ASYNC_LOADING, NO_KEYS, bgsave)
        .doc("server", "1.0.0", "Asynchronously saves the database(s) to disk.", "O(1)"),
    CommandSpec::new("lastsave", 1, LOADING | STALE | FAST, NO_KEYS, lastsave)
        .acl(&["admin", "dangerous"])
        .tips(&["nondeterministic_output"])
        .doc("server", "1.0.0", "Returns the Unix timestamp of the last successful save to disk.", "O(1)"),
    CommandSpec::new("module", -2, 0, NO_KEYS, container)
        .doc("server", "4.0.0", "A container for module commands.", "Depends on subcommand.")
        .subcommands(MODULE_SUBCOMMANDS),
    CommandSpec::new("lolwut", -1, READONLY | FAST, NO_KEYS, lolwut)
        .doc("server", "5.0.0", "Displays computer art and the Redis version", ""),
];

static MODULE_SUBCOMMANDS: &[CommandSpec] = &[
    CommandSpec::new("module|list", 2, ADMIN | NOSCRIPT, NO_KEYS, module_list)
        .tips(&["nondeterministic_output_order"])
        .doc(
            "server",
            "4.0.0",
            "Returns all loaded modules.",
            "O(N) where N is the number of loaded modules.",
        ),
    CommandSpec::new(
        "module|load",
        -3,
        ADMIN | NOSCRIPT | NO_ASYNC_LOADING,
        NO_KEYS,
        module_load,
    )
    .doc("server", "4.0.0", "Loads a module.", "O(1)"),
    CommandSpec::new(
        "module|loadex",
        -3,
        ADMIN | NOSCRIPT | NO_ASYNC_LOADING,
        NO_KEYS,
        module_loadex,
    )
    .doc(
        "server",
        "7.0.0",
        "Loads a module using extended parameters.",
        "O(1)",
    ),
    CommandSpec::new(
        "module|unload",
        3,
        ADMIN | NOSCRIPT | NO_ASYNC_LOADING,
        NO_KEYS,
        module_unload,
    )
    .doc("server", "4.0.0", "Unloads a module.", "O(1)"),
    CommandSpec::new("module|help", 2, LOADING | STALE, NO_KEYS, module_help).doc(
        "server",
        "5.0.0",
        "Returns helpful text about the different subcommands.",
        "O(1)",
    ),
];

/// As a Redis master with no replicas: role, replication offset, replicas.
fn role(ctx: &mut Ctx, _argv: &[&[u8]]) -> Result<()> {
    ctx.out.array(3);
    ctx.out.bulk(b"master");
    ctx.out.int(0);
    ctx.out.array(0);
    Ok(())
}

/// The time of the last successful save; the time the server started
/// until then, as Redis.
fn lastsave(ctx: &mut Ctx, _argv: &[&[u8]]) -> Result<()> {
    ctx.out.int(ctx.shared.persistence.lastsave() as i64);
    Ok(())
}

/// SAVE: the snapshot is written on this connection's thread; unlike
/// Redis, other clients are served meanwhile (see `crate::persistence`).
fn save(ctx: &mut Ctx, _argv: &[&[u8]]) -> Result<()> {
    let options = ctx.shared.save_options();
    match ctx.shared.persistence.save(&ctx.shared.store, &options) {
        Ok(_) => {
            ctx.out.ok();
            Ok(())
        }
        Err(SaveError::InProgress) => Err(Error::err("Background save already in progress")),
        // Redis answers a bare `-ERR`; the reason is in the log.
        Err(SaveError::Failed(_)) => Err(Error::raw("ERR")),
    }
}

/// BGSAVE [SCHEDULE].
fn bgsave(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let schedule = match argv {
        [_] => false,
        [_, option] if is_keyword(option, "SCHEDULE") => true,
        _ => return Err(Error::syntax()),
    };
    let persistence = &ctx.shared.persistence;
    if persistence.bgsave_in_progress() {
        return Err(Error::err("Background save already in progress"));
    }
    // Inside EXEC this connection holds shard locks the snapshot's start
    // needs: as Redis in EXEC, the save is scheduled (the cron starts it).
    // A SAVE running: as Redis with another child active.
    if ctx.locks.in_transaction() || persistence.is_saving() {
        if schedule || ctx.locks.in_transaction() {
            persistence.schedule_bgsave();
            ctx.out.simple("Background saving scheduled");
            return Ok(());
        }
        return Err(Error::err(
            "Another child process is active (AOF?): can't BGSAVE right now. Use BGSAVE SCHEDULE in order to schedule a BGSAVE whenever possible.",
        ));
    }
    match persistence.bgsave(&ctx.shared.store, ctx.shared.save_options()) {
        Ok(()) => {
            ctx.out.simple("Background saving started");
            Ok(())
        }
        Err(SaveError::InProgress) => Err(Error::err("Background save already in progress")),
        Err(SaveError::Failed(_)) => Err(Error::raw("ERR")),
    }
}

// Larder loads no modules: MODULE answers as a Redis with none loaded, and
// every load fails with the text Redis gives for a library it cannot load.
fn module_list(ctx: &mut Ctx, _argv: &[&[u8]]) -> Result<()> {
    ctx.out.array(0);
    Ok(())
}

fn module_load(_ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    tracing::warn!(
        path = %String::from_utf8_lossy(argv[2]),
        "MODULE LOAD refused: Larder has no module support"
    );
    Err(Error::err(
        "Error loading the extension. Please check the server logs.",
    ))
}

fn module_loadex(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    // Redis checks the CONFIG/ARGS layout before it tries the library.
    let mut i = 3;
    while i < argv.len() {
        if is_keyword(argv[i], "CONFIG") {
            if i + 2 >= argv.len() {
                return Err(Error::err(
                    "Module Load failed: Invalid arguments provided.",
                ));
            }
            i += 3;
        } else if is_keyword(argv[i], "ARGS") {
            break;
        } else {
            return Err(Error::err(
                "Module Load failed: Invalid arguments provided.",
            ));
        }
    }
    module_load(ctx, argv)
}

fn module_unload(_ctx: &mut Ctx, _argv: &[&[u8]]) -> Result<()> {
    Err(Error::err(
        "Error unloading module: no such module with that name",
    ))
}

fn module_help(ctx: &mut Ctx, _argv: &[&[u8]]) -> Result<()> {
    super::reply_help(
        ctx,
        "MODULE",
        &[
            "LIST",
            "    Return a list of loaded modules.",
            "LOAD <path> [<arg> ...]",
            "    Load a module library from <path>, passing to it any optional arguments.",
            "LOADEX <path> [[CONFIG NAME VALUE] [CONFIG NAME VALUE]] [ARGS ...]",
            "    Load a module library from <path>, while passing it module configurations and optional arguments.",
            "UNLOAD <name>",
            "    Unload a module.",
        ],
    );
    Ok(())
}

/// LOLWUT [VERSION v] [args]: Redis 5's art (Georg Nees's Schotter) for
/// version 5 (and 4.9), Redis 6's skyline for version 6 (and 5.9); for any
/// other version the line Redis prints for versions without art of their
/// own (Redis 7 has none).
fn lolwut(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let mut args = &argv[1..];
    let mut version = crate::version::REDIS_VERSION.to_owned();
    if args.len() >= 2 && is_keyword(args[0], "VERSION") {
        let requested = super::parse::strict_i64(args[1]).ok_or_else(Error::not_integer)?;
        // Redis prints it as `%u.0.0`.
        version = format!("{}.0.0", requested as u32);
        args = &args[2..];
    }
    let v = version.as_bytes();
    let text = if (v[0] == b'5' && v[1] == b'.' && v[2] != b'9') || v.starts_with(b"4.9") {
        let mut numbers = [66i64, 8, 12];
        for (slot, arg) in numbers.iter_mut().zip(args) {
            *slot = super::parse::strict_i64(arg).ok_or_else(Error::not_integer)?;
        }
        let [cols, per_row, per_col] = numbers;
        let mut text = lolwut::schotter(
            cols.clamp(1, 1000) as usize,
            per_row.clamp(1, 200) as usize,
            per_col.clamp(1, 200) as usize,
        );
        text.push_str("\nGeorg Nees - schotter, plotter on paper, 1968. Redis ver. ");
        text.push_str(crate::version::REDIS_VERSION);
        text.push('\n');
        text
    } else if (v[0] == b'6' && v[1] == b'.' && v[2] != b'9') || v.starts_with(b"5.9") {
        let mut numbers = [80i64, 20];
        for (slot, arg) in numbers.iter_mut().zip(args) {
            *slot = super::parse::strict_i64(arg).ok_or_else(Error::not_integer)?;
        }
        let [cols, rows] = numbers;
        let mut text = lolwut::skyline(cols.clamp(1, 1000) as usize, rows.clamp(1, 1000) as usize);
        text.push_str(
            "\nDedicated to the 8 bit game developers of past and present.\n\
             Original 8 bit image from Plaguemon by hikikomori. Redis ver. ",
        );
        text.push_str(crate::version::REDIS_VERSION);
        text.push('\n');
        text
    } else {
        format!("Redis ver. {}\n", crate::version::REDIS_VERSION)
    };
    ctx.out.verbatim("txt", text.as_bytes());
    Ok(())
}
fn time(ctx: &mut Ctx, _argv: &[&[u8]]) -> Result<()> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    ctx.out.array(2);
    ctx.out.bulk_int(now.as_secs() as i64);
    ctx.out.bulk_int(now.subsec_micros() as i64);
    Ok(())
}

fn dbsize(ctx: &mut Ctx, _argv: &[&[u8]]) -> Result<()> {
    let db = ctx.db();
    let mut total = 0;
    ctx.locks.each_shard(|shard| {
        total += shard.db_ref(db).len();
        Ok(())
    })?;
    ctx.out.int(total as i64);
    Ok(())
}

fn shutdown(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    super::audited::audited(ctx, argv, "shutdown", None, shutdown_unaudited)
}

fn shutdown_unaudited(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let mut abort = false;
    let (mut save, mut nosave, mut force) = (false, false, false);
    for arg in &argv[1..] {
        if is_keyword(arg, "NOSAVE") {
            nosave = true;
        } else if is_keyword(arg, "SAVE") {
            save = true;
        } else if is_keyword(arg, "NOW") {
            // Larder has no replicas to wait for.
        } else if is_keyword(arg, "FORCE") {
            force = true;
        } else if is_keyword(arg, "ABORT") {
            abort = true;
        } else {
            return Err(Error::syntax());
        }
    }
    if (save && nosave) || (abort && argv.len() > 2) {
        return Err(Error::syntax());
    }
    if abort {
        // Shutdown is immediate in Larder: there is never one to abort.
        return Err(Error::err("No shutdown in progress."));
    }
    // Past busy-reply-threshold, as Redis: only SHUTDOWN NOSAVE, which
    // stops the script (see `Shared::request_shutdown`).
    if !nosave {
        match ctx.shared.scripting.busy() {
            Some(crate::scripting::RunKind::Eval) => {
                return Err(Error::raw(crate::scripting::BUSY_EVAL))
            }
            Some(crate::scripting::RunKind::Function) => {
                return Err(Error::raw(crate::scripting::BUSY_FUNCTION))
            }
            None => {}
        }
    }
    tracing::warn!("User requested shutdown...");
    if !shutdown_save(ctx.shared, save, nosave, force) {
        return Err(Error::err("Errors trying to SHUTDOWN. Check logs."));
    }
    ctx.shared.persistence.mark_shutdown_handled();
    ctx.shared.request_shutdown();
    // Like Redis, no reply: the connection just closes.
    ctx.session.close_after_reply = true;
    Ok(())
}

/// What Redis's finishShutdown does with the RDB file: a background save
/// running is stopped; then a final snapshot is written if save points are
/// configured (unless NOSAVE) or SAVE was given. Returns false when that
/// save failed and FORCE was not given: the server must not stop.
pub fn shutdown_save(
    shared: &crate::shared::Shared,
    save: bool,
    nosave: bool,
    force: bool,
) -> bool {
    shared.persistence.abort(true);
    let wanted = save || (!nosave && !shared.config.read().save_points.is_empty());
    // As Redis: a half-loaded dataset is never saved over the file.
    if !wanted || shared.persistence.is_loading() {
        return true;
    }
    tracing::info!("Saving the final RDB snapshot before exiting.");
    match shared
        .persistence
        .save(&shared.store, &shared.save_options())
    {
        Ok(_) => true,
        Err(_) if force => {
            tracing::warn!("Error trying to save the DB. Exit anyway.");
            true
        }
        Err(_) => {
            tracing::warn!("Error trying to save the DB, can't exit.");
            tracing::warn!(
                "Errors trying to shut down the server. Check the logs for more information."
            );
            false
        }
    }
}

/// LOLWUT version 5: Georg Nees's "Schotter" (1968) drawn in Braille
/// characters, after Redis 5's lolwut.c (BSD-3-Clause): a grid of squares
/// that rotate and shift more and more randomly row after row. Version 6:
/// a city skyline in the four grays of a terminal, after Redis 6's
/// lolwut6.c (BSD-3-Clause), itself after the 8-bit game Plaguemon.
mod lolwut {
    use rand::Rng;

    /// One skyscraper of the skyline: where, how big, which gray.
    struct Skyscraper {
        xoff: i32,
        width: i32,
        height: i32,
        windows: bool,
        color: u8,
    }

    /// The skyline's canvas: one gray level (0 black .. 3 white) a cell.
    struct Grays {
        width: i32,
        height: i32,
        cells: Vec<u8>,
    }

    impl Grays {
        fn get(&self, x: i32, y: i32) -> u8 {
            if (0..self.width).contains(&x) && (0..self.height).contains(&y) {
                self.cells[(x + y * self.width) as usize]
            } else {
                0
            }
        }

        fn set(&mut self, x: i32, y: i32, color: u8) {
            if (0..self.width).contains(&x) && (0..self.height).contains(&y) {
                self.cells[(x + y * self.width) as usize] = color;
            }
        }

        fn skyscraper(&mut self, s: &Skyscraper, rng: &mut impl Rng) {
            let start_y = self.height - 1;
            let end_y = start_y - s.height + 1;
            for y in (end_y..=start_y).rev() {
                for x in s.xoff..s.xoff + s.width {
                    // The roof is four cells narrower.
                    if y == end_y && (x <= s.xoff + 1 || x >= s.xoff + s.width - 2) {
                        continue;
                    }
                    let mut color = s.color;
                    // Windows, away from the walls: two cells wide (terminal
                    // cells are tall), one high, in one of the other grays.
                    if s.windows
                        && x > s.xoff + 1
                        && x < s.xoff + s.width - 2
                        && y > end_y + 1
                        && y < start_y - 1
                    {
                        let (rel_x, rel_y) = (x - (s.xoff + 1), y - (end_y + 1));
                        if (rel_x / 2) % 2 != 0 && rel_y % 2 != 0 {
                            loop {
                                color = 1 + rng.gen_range(0..2u8);
                                if color != s.color {
                                    break;
                                }
                            }
                            if rel_x % 2 != 0 {
                                color = self.get(x - 1, y);
                            }
                        }
                    }
                    self.set(x, y, color);
                }
            }
        }
    }

    pub fn skyline(cols: usize, rows: usize) -> String {
        let (width, height) = (cols as i32, rows as i32);
        let mut canvas = Grays {
            width,
            height,
            cells: vec![3; cols * rows],
        };
        let mut rng = rand::thread_rng();
        let below = |n: i32, rng: &mut rand::rngs::ThreadRng| rng.gen_range(0..n.max(1));
        // Background towers without windows, the lighter gray behind.
        for color in [2u8, 1] {
            let mut offset = -10;
            while offset < width {
                offset += below(8, &mut rng);
                let tower_width = 10 + below(9, &mut rng);
                let tower_height = if color == 2 {
                    height / 2 + below(height, &mut rng) / 2
                } else {
                    height / 2 + below(height, &mut rng) / 3
                };
                let tower = Skyscraper {
                    xoff: offset,
                    width: tower_width,
                    height: tower_height,
                    windows: false,
                    color,
                };
                canvas.skyscraper(&tower, &mut rng);
                offset += if color == 2 {
                    tower_width / 2
                } else {
                    tower_width + 1
                };
            }
        }
        // Black towers with lit windows in front.
        let mut offset = -10;
        while offset < width {
            offset += below(8, &mut rng);
            let mut tower_width = 5 + below(14, &mut rng);
            if tower_width % 4 != 0 {
                tower_width += tower_width % 3;
            }
            let tower = Skyscraper {
                xoff: offset,
                width: tower_width,
                height: height / 3 + below(height, &mut rng) / 2,
                windows: true,
                color: 0,
            };
            canvas.skyscraper(&tower, &mut rng);
            offset += tower_width + 5;
        }
        // Each cell a space with its gray as both colours, as Redis 6.
        let mut text = String::new();
        for y in 0..height {
            for x in 0..width {
                let escape = match canvas.get(x, y) {
                    1 => "0;90;100m",
                    2 => "0;37;47m",
                    3 => "0;97;107m",
                    _ => "0;30;40m",
                };
                text.push_str("\x1b[");
                text.push_str(escape);
                text.push_str(" \x1b[0m");
            }
            if y != height - 1 {
                text.push('\n');
            }
        }
        text
    }

    struct Canvas {
        width: i32,
        height: i32,
        pixels: Vec<bool>,
    }

    impl Canvas {
        fn new(width: i32, height: i32) -> Self {
            let cells = (width.max(0) as usize) * (height.max(0) as usize);
            Canvas {
                width,
                height,
                pixels: vec![false; cells],
            }
        }

        fn set(&mut self, x: i32, y: i32) {
            if (0..self.width).contains(&x) && (0..self.height).contains(&y) {
                self.pixels[(x + y * self.width) as usize] = true;
            }
        }

        fn get(&self, x: i32, y: i32) -> bool {
            (0..self.width).contains(&x)
                && (0..self.height).contains(&y)
                && self.pixels[(x + y * self.width) as usize]
        }

        /// Bresenham's line.
        fn line(&mut self, mut x1: i32, mut y1: i32, x2: i32, y2: i32) {
            let (dx, dy) = ((x2 - x1).abs(), (y2 - y1).abs());
            let (sx, sy) = (if x1 < x2 { 1 } else { -1 }, if y1 < y2 { 1 } else { -1 });
            let mut err = dx - dy;
            loop {
                self.set(x1, y1);
                if x1 == x2 && y1 == y2 {
                    break;
                }
                let e2 = err * 2;
                if e2 > -dy {
                    err -= dy;
                    x1 += sx;
                }
                if e2 < dx {
                    err += dx;
                    y1 += sy;
                }
            }
        }

        /// A square centred on (x, y), `size` wide, rotated by `angle`: its
        /// corners are four points 90 degrees apart on a circle.
        fn square(&mut self, x: i32, y: i32, size: f32, angle: f32) {
            let radius = (size / std::f32::consts::SQRT_2).round() as f64;
            let mut k = std::f64::consts::FRAC_PI_4 + angle as f64;
            let mut corners = [(0i32, 0i32); 4];
            for corner in corners.iter_mut() {
                *corner = (
                    (k.sin() * radius + x as f64).round() as i32,
                    (k.cos() * radius + y as f64).round() as i32,
                );
                k += std::f64::consts::FRAC_PI_2;
            }
            for j in 0..4 {
                let (a, b) = (corners[j], corners[(j + 1) % 4]);
                self.line(a.0, a.1, b.0, b.1);
            }
        }

        /// Each 2x4 block of pixels as one Braille character (U+2800 + dots).
        fn render(&self) -> String {
            let mut text = String::new();
            let mut y = 0;
            while y < self.height {
                let mut x = 0;
                while x < self.width {
                    let dots = [
                        (0, 0, 0),
                        (0, 1, 1),
                        (0, 2, 2),
                        (1, 0, 3),
                        (1, 1, 4),
                        (1, 2, 5),
                        (0, 3, 6),
                        (1, 3, 7),
                    ];
                    let byte = dots
                        .iter()
                        .filter(|(dx, dy, _)| self.get(x + dx, y + dy))
                        .fold(0u32, |acc, (_, _, bit)| acc | (1 << bit));
                    text.push(char::from_u32(0x2800 + byte).unwrap_or(' '));
                    x += 2;
                }
                if y != self.height - 1 {
                    text.push('\n');
                }
                y += 4;
            }
            text
        }
    }

    pub fn schotter(console_cols: usize, per_row: usize, per_col: usize) -> String {
        let width = console_cols as i32 * 2;
        let padding = if width > 4 { 2 } else { 0 };
        let side = (width - padding * 2) as f32 / per_row as f32;
        let height = (side * per_col as f32) as i32 + padding * 2;
        let mut canvas = Canvas::new(width, height);
        let mut rng = rand::thread_rng();
        for y in 0..per_col {
            for x in 0..per_row {
                let mut sx = (x as f32 * side + side / 2.0 + padding as f32) as i32;
                let mut sy = (y as f32 * side + side / 2.0 + padding as f32) as i32;
                let mut angle = 0.0;
                // Order at the top, more chaos in each row below.
                if y > 1 {
                    let mut jitter = || {
                        let r = rng.gen::<f32>() / per_col as f32 * y as f32;
                        if rng.gen::<bool>() {
                            -r
                        } else {
                            r
                        }
                    };
                    let (r1, r2, r3) = (jitter(), jitter(), jitter());
                    angle = r1;
                    sx += (r2 * side / 3.0) as i32;
                    sy += (r3 * side / 3.0) as i32;
                }
                canvas.square(sx, sy, side, angle);
            }
        }
        canvas.render()
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn draws_a_grid_of_squares() {
            let art = super::schotter(66, 8, 12);
            let lines: Vec<&str> = art.lines().collect();
            // 132x(16*12+4) pixels: 66 characters a line, 49 lines.
            assert_eq!(lines.len(), 49);
            assert!(lines.iter().all(|l| l.chars().count() == 66));
            // The first rows are straight squares: some dots, some blanks.
            assert!(lines[1].chars().any(|c| c != '\u{2800}'));
            assert!(art.chars().any(|c| c == '\u{2800}'));
        }

        #[test]
        fn draws_a_skyline() {
            let art = super::skyline(80, 20);
            let lines: Vec<&str> = art.split('\n').collect();
            assert_eq!(lines.len(), 20);
            for line in &lines {
                assert_eq!(line.matches("\x1b[0m").count(), 80);
            }
            // The sky is white above every tower; the bottom row is mostly
            // towers (the random gaps between them may show sky), with
            // black foreground towers somewhere.
            assert_eq!(lines[0].matches("0;97;107m").count(), 80);
            assert!(lines[19].matches("0;97;107m").count() < 40);
            assert!(art.contains("0;30;40m"));
        }
    }
}
