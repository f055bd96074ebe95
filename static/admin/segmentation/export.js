// Export page: show only the destination and schedule fields that apply to the chosen kind.
// Hidden fields keep their values (the server ignores fields of other kinds), so switching back
// and forth loses nothing.
(function () {
  "use strict";

  const DESTINATION_FIELDS = {
    download: [],
    folder: ["folder_path"],
    s3: ["storage_alias", "storage_prefix"],
    webhook: ["webhook_url", "webhook_secret"],
  };
  const SCHEDULE_FIELDS = {
    none: [],
    crontab: ["cron", "timezone"],
    interval: ["interval_minutes", "timezone"],
  };

  function fieldRow(name) {
    return document.querySelector(".form-row.field-" + name) || document.querySelector(".field-" + name);
  }

  function bind(selectId, groups) {
    const select = document.getElementById(selectId);
    if (!select) return;
    const all = new Set(Object.values(groups).flat());
    const update = () => {
      const shown = new Set(groups[select.value] || []);
      all.forEach((name) => {
        const row = fieldRow(name);
        if (row) row.style.display = shown.has(name) ? "" : "none";
      });
    };
    select.addEventListener("change", update);
    update();
  }

  document.addEventListener("DOMContentLoaded", () => {
    bind("id_destination_kind", DESTINATION_FIELDS);
    bind("id_schedule_type", SCHEDULE_FIELDS);
  });
})();
