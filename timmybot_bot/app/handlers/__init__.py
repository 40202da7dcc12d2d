"""The handlers, one per command, grouped by what they act on; :data:`HANDLERS` maps them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from timmybot_bot.app import commands as c
from timmybot_bot.app.handlers import access, audit, incidents, music, privacy, tokens

__all__ = ["HANDLERS"]

#: Every command class and the handler that runs it.
HANDLERS: Final[dict[type[c.Command], Callable[..., Any]]] = {
    c.SearchTracks: music.search_tracks,
    c.CheckPlaylistName: music.check_playlist_name,
    c.WhoAmI: music.who_am_i,
    c.LinkAccount: music.link_account,
    c.ShowLinks: music.show_links,
    c.UnlinkAccount: music.unlink_account,
    c.PrivacyInfo: privacy.privacy_info,
    c.ExportMyData: privacy.export_my_data,
    c.RequestErasure: privacy.request_erasure,
    c.EraseMyData: privacy.erase_my_data,
    c.ExportUserData: privacy.export_user_data,
    c.EraseUserData: privacy.erase_user_data,
    c.AllowGuild: access.change_guild,
    c.RemoveGuild: access.change_guild,
    c.UnbanGuild: access.change_guild,
    c.ListGuilds: access.list_guilds,
    c.SwitchOn: access.set_switch,
    c.SwitchOff: access.set_switch,
    c.SwitchStatus: access.switch_states,
    c.ListSwitches: access.switch_states,
    c.DeclareIncident: incidents.declare_incident,
    c.QueryAudit: audit.query_audit,
    c.VerifyAudit: audit.verify_audit,
    c.RotateAuditKey: audit.rotate_audit_key,
    c.RunRotation: tokens.run_rotation,
    c.RekeyVault: tokens.rekey,
}
