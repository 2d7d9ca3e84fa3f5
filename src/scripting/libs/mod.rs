//! (Replaced by the cjson, cmsgpack, bit and struct libraries.)
pub fn register_all(_lua: &mlua::Lua) -> mlua::Result<()> {
    Ok(())
}
