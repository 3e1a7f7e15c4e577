// A virtualised table: fixed row height, a spacer as tall as every row, and only the rows in
// view (plus a few) in the DOM, so 10,000 runs cost what 40 do.
import { el, rafThrottle } from "./common.js";

export class VirtualTable {
  /**
   * @param {HTMLElement} host  where the table goes (it fills the host's height)
   * @param {object} opts
   *   rowHeight: px per row (fixed)
   *   renderCell(row, column) -> string | Node   row is an index into the page's data
   *   rowClass(row) -> string                     extra class for a row ("selected")
   *   onSort(column)                               header click on a sortable column
   *   emptyText                                    shown when there are no rows
   */
  constructor(host, opts) {
    this.rowHeight = opts.rowHeight ?? 28;
    this.overscan = opts.overscan ?? 10;
    this.renderCell = opts.renderCell;
    this.rowClass = opts.rowClass ?? (() => "");
    this.onSort = opts.onSort ?? (() => {});
    this.emptyText = opts.emptyText ?? "No rows";
    this.columns = [];
    this.rows = [];
    this.sort = null;
    this.head = el("div", { class: "vt-head", role: "row" });
    this.body = el("div", { class: "vt-body", role: "rowgroup" });
    this.empty = el("div", { class: "vt-empty hidden" });
    this.viewport = el("div", { class: "vt", role: "table" }, this.head, this.body, this.empty);
    host.appendChild(this.viewport);
    this.rendered = { first: -1, last: -1 };
    const onScroll = rafThrottle(() => this.renderRows(false));
    this.viewport.addEventListener("scroll", onScroll, { passive: true });
    this.resizeObserver = new ResizeObserver(() => this.renderRows(false));
    this.resizeObserver.observe(this.viewport);
  }

  /** columns: [{name, label, kind, width, num, sortable, title}] */
  setColumns(columns) {
    this.columns = columns;
    this.width = columns.reduce((sum, c) => sum + c.width, 0);
    this.renderHead();
    this.renderRows(true);
  }

  /** rows: an array of row indices, in display order. */
  setRows(rows) {
    this.rows = rows;
    this.body.style.height = `${rows.length * this.rowHeight}px`;
    this.empty.textContent = this.emptyText;
    this.empty.classList.toggle("hidden", rows.length > 0);
    this.renderRows(true);
  }

  setSort(sort) {
    this.sort = sort;
    this.renderHead();
  }

  /** Re-render the visible rows (selection changed, data changed). */
  refresh() {
    this.renderRows(true);
  }

  scrollToTop() {
    this.viewport.scrollTop = 0;
  }

  renderHead() {
    const cells = this.columns.map((column) => {
      const sortable = column.sortable !== false;
      const cell = el("div", {
        class: `vt-cell${column.num ? " num" : ""}${sortable ? "" : " nosort"}`,
        title: column.title ?? column.name,
        role: "columnheader",
        dataset: { col: column.name },
      });
      cell.style.width = `${column.width}px`;
      cell.style.height = `${this.rowHeight + 2}px`;
      if (column.header) {
        cell.append(column.header);
      } else {
        if (column.kind) cell.append(el("span", { class: "kind" }, column.kind));
        cell.append(el("span", { class: "clip" }, column.label ?? column.name));
        if (this.sort && this.sort.column === column.name) {
          cell.append(el("span", { class: "arrow" }, this.sort.desc ? "▼" : "▲"));
          cell.setAttribute("aria-sort", this.sort.desc ? "descending" : "ascending");
        }
        if (sortable) cell.addEventListener("click", () => this.onSort(column));
      }
      return cell;
    });
    this.head.replaceChildren(...cells);
    this.head.style.width = `${this.width}px`;
  }

  renderRows(force) {
    const rh = this.rowHeight;
    const top = this.viewport.scrollTop;
    const height = this.viewport.clientHeight || 600;
    const first = Math.max(0, Math.floor(top / rh) - this.overscan);
    const last = Math.min(this.rows.length, Math.ceil((top + height) / rh) + this.overscan);
    if (!force && first === this.rendered.first && last === this.rendered.last) return;
    this.rendered = { first, last };
    const fragment = document.createDocumentFragment();
    for (let i = first; i < last; i++) {
      const row = this.rows[i];
      const extra = this.rowClass(row);
      const line = el("div", { class: `vt-row${extra ? ` ${extra}` : ""}`, role: "row" });
      line.style.top = `${i * rh}px`;
      line.style.height = `${rh}px`;
      line.style.width = `${this.width}px`;
      for (const column of this.columns) {
        const cell = el("div", { class: `vt-cell${column.num ? " num" : ""}`, role: "cell" });
        cell.style.width = `${column.width}px`;
        const content = this.renderCell(row, column);
        if (content instanceof Node) cell.append(content);
        else if (content !== undefined && content !== null && content !== "") {
          cell.textContent = String(content);
          cell.title = String(content);
        }
        line.append(cell);
      }
      fragment.append(line);
    }
    this.body.replaceChildren(fragment);
    this.body.style.width = `${this.width}px`;
  }
}
