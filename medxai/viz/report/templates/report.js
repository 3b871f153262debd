/* medxai report: the "Images" section, rendered from the JSON in #report-data a page at a time,
   with filters and a sort. No network, no libraries. Text from the run is only ever put into the
   page with textContent or setAttribute, never as HTML. The filter and sort functions need no DOM
   (tests run them in Node through module.exports). */
(function () {
  "use strict";

  var SVG = "http://www.w3.org/2000/svg";
  // the view when the address sets nothing (size 0: the report's page size)
  var DEFAULTS = {
    method: "", cls: "", channel: "", role: "any", outcome: "", status: "", sort: "", order: "asc", page: 1, size: 0
  };

  function isNumber(value) {
    return typeof value === "number" && isFinite(value);
  }

  /* The classes of an image in a role: "label", "predicted", "explained" (its maps) or "any". */
  function classesOf(image, role) {
    var explained = image.classes.filter(function (c) { return c !== null; });
    var label = image.labels || [], predicted = image.predicted || [];
    if (role === "label") return label;
    if (role === "predicted") return predicted;
    if (role === "explained") return explained;
    return explained.concat(label, predicted);
  }

  /* The maps of an image that pass the filters, or null when the image does not. Filtering by a
     class the image has maps of shows only that class's maps. */
  function visibleMaps(image, state) {
    if (state.outcome && (image.outcome || "unknown") !== state.outcome) return null;
    var cls = state.cls === "" ? null : Number(state.cls);
    if (cls !== null && classesOf(image, state.role).indexOf(cls) < 0) return null;
    var channel = state.channel === "" || state.channel === undefined ? null : Number(state.channel);
    var maps = image.maps.filter(function (m) {
      return (!state.method || m.method === state.method) && (!state.status || m.status === state.status) &&
        (channel === null || m.channel === channel);
    });
    if (cls !== null && state.role !== "label" && state.role !== "predicted") {
      var own = maps.filter(function (m) { return m["class"] === cls; });
      if (own.length) maps = own;
    }
    return maps.length ? maps : null;
  }

  /* An image's sort value: the lowest of its shown maps' values when ascending, the highest when
     descending (so "completeness, descending" puts the image with the worst map first). */
  function sortValue(maps, key, descending) {
    var found = null;
    maps.forEach(function (m) {
      var value = m.values ? m.values[key] : undefined;
      if (isNumber(value) && (found === null || (descending ? value > found : value < found))) found = value;
    });
    return found;
  }

  /* The images that pass the filters, sorted: [{image, maps}]. Images without the sort value go last. */
  function select(data, state) {
    var rows = [];
    data.images.forEach(function (image) {
      var maps = visibleMaps(image, state);
      if (maps) rows.push({ image: image, maps: maps, key: null });
    });
    var descending = state.order === "desc";
    var sign = descending ? -1 : 1;
    if (state.sort === "id") {
      rows.sort(function (a, b) {
        return sign * (a.image.id < b.image.id ? -1 : a.image.id > b.image.id ? 1 : 0) || a.image.n - b.image.n;
      });
    } else if (state.sort) {
      rows.forEach(function (row) { row.key = sortValue(row.maps, state.sort, descending); });
      rows.sort(function (a, b) {
        if (a.key === null || b.key === null) return (a.key === null) - (b.key === null) || a.image.n - b.image.n;
        return sign * (a.key - b.key) || a.image.n - b.image.n;
      });
    } else if (descending) {
      rows.reverse();
    }
    return rows;
  }

  if (typeof module !== "undefined" && module.exports) {
    module.exports = { select: select, visibleMaps: visibleMaps, sortValue: sortValue, DEFAULTS: DEFAULTS };
  }
  if (typeof document === "undefined") return;

  // ---- the page

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function outlineSvg(outline, colour) {
    var svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("viewBox", "0 0 " + outline.w + " " + outline.h);
    svg.setAttribute("preserveAspectRatio", "none");
    svg.setAttribute("aria-hidden", "true");
    var group = document.createElementNS(SVG, "g");
    group.setAttribute("fill", "none");
    group.setAttribute("stroke", colour);
    group.setAttribute("stroke-width", "1.6");
    group.setAttribute("stroke-linejoin", "round");
    outline.lines.forEach(function (points) {
      var line = document.createElementNS(SVG, "polyline");
      line.setAttribute("vector-effect", "non-scaling-stroke");
      line.setAttribute("points", points);
      group.appendChild(line);
    });
    svg.appendChild(group);
    return svg;
  }

  function thumbBox(thumb, image, data) {
    var box = el(thumb.href ? "a" : "div", "thumb");
    box.style.width = thumb.w + "px";
    box.style.height = thumb.h + "px";
    if (!thumb.src) {
      box.className = "thumb missing";
      box.textContent = thumb.problem;
      return box;
    }
    if (thumb.href) {
      box.setAttribute("href", thumb.href);
      box.setAttribute("target", "_blank");
      box.setAttribute("title", "full size: " + decodeURIComponent(thumb.href));
    }
    var img = el("img", thumb.px ? "px" : "");
    img.setAttribute("alt", thumb.alt);
    img.setAttribute("loading", "lazy");
    img.setAttribute("decoding", "async");
    img.setAttribute("src", thumb.src);
    box.appendChild(img);
    if (thumb.outline && image.outline) box.appendChild(outlineSvg(image.outline, data.outlineColour));
    return box;
  }

  function classText(data, cls) {
    if (cls === null || cls === undefined) return "—";
    for (var i = 0; i < data.classes.length; i++) if (data.classes[i].index === cls) return data.classes[i].text;
    return String(cls);
  }

  function card(m, image, data) {
    var figure = el("figure", "card");
    var pair = el("div", "pair");
    m.thumbs.forEach(function (t) { pair.appendChild(thumbBox(t, image, data)); });
    figure.appendChild(pair);
    var caption = el("figcaption");
    caption.appendChild(el("b", "", m.method));
    var target = m.caption ? m.caption : "class " + classText(data, m["class"]) + " · p = " + m.score;
    caption.appendChild(document.createTextNode(" · " + target));
    m.written.forEach(function (line) {
      caption.appendChild(el("br"));
      caption.appendChild(el("span", "small muted", line));
    });
    if (m.figures.length) {
      var figs = el("div", "figs");
      m.figures.forEach(function (f) {
        var label = el("span", "", f[0]);
        label.setAttribute("title", f[2]);
        figs.appendChild(label);
        figs.appendChild(el("span", "num " + f[3], f[1]));
      });
      caption.appendChild(figs);
    }
    if (m.noMetrics) caption.appendChild(el("div", "small muted", "no metrics.csv row for this map"));
    if (m.metricError) caption.appendChild(el("div", "small error", "evaluation: " + m.metricError));
    figure.appendChild(caption);
    return figure;
  }

  function block(row, data) {
    var image = row.image;
    var article = el("article", "image");
    article.id = "image-" + image.n;
    var head = el("div", "head");
    head.appendChild(el("h3", "", image.id));
    var facts = [image.label !== "" ? "label " + image.label : "no label"];
    if (image.predicted !== null) {
      var predicted = image.predicted.map(function (c) { return classText(data, c); });
      facts.push("predicted " + (predicted.length ? predicted.join(", ") : "none"));
    }
    if (image.explained) facts.push("explained: " + image.explained);
    if (image.mask === "empty") facts.push("mask empty");
    var line = el("span", "", facts.join(" · "));
    if (image.mask === "outline") {
      line.appendChild(document.createTextNode(" · "));
      line.appendChild(el("span", "legend-outline"));
      line.appendChild(document.createTextNode(" mask"));
    }
    if (image.outcome === "mispredicted") {
      line.appendChild(document.createTextNode(" "));
      line.appendChild(el("span", "badge fail", "predicted ≠ label"));
    }
    head.appendChild(line);
    article.appendChild(head);
    article.appendChild(el("p", "src small muted mono", image.source));
    var ok = row.maps.filter(function (m) { return m.status === "ok"; });
    image.classes.forEach(function (cls) {
      var own = ok.filter(function (m) { return m["class"] === cls; });
      if (!own.length) return;
      var classRow = el("div", "classrow");
      own.forEach(function (m) { classRow.appendChild(card(m, image, data)); });
      article.appendChild(classRow);
    });
    row.maps.forEach(function (m) {
      if (m.status === "ok") return;
      var p = el("p", "small");
      p.appendChild(el("b", "", m.method));
      p.appendChild(document.createTextNode(" failed: "));
      p.appendChild(el("span", "error", m.error || "(no message)"));
      article.appendChild(p);
    });
    image.notes.forEach(function (note) { article.appendChild(el("p", "small muted", note)); });
    return article;
  }

  function option(value, text) {
    var node = el("option", "", text);
    node.value = value;
    return node;
  }

  function readState(data) {
    var state = {};
    for (var key in DEFAULTS) state[key] = DEFAULTS[key];
    state.size = data.pageSize;
    var query = window.location.search.replace(/^\?/, "");
    query.split("&").forEach(function (pair) {
      if (!pair) return;
      var parts = pair.split("=");
      var key = decodeURIComponent(parts[0]), value = decodeURIComponent((parts[1] || "").replace(/\+/g, " "));
      if (!Object.prototype.hasOwnProperty.call(DEFAULTS, key)) return;
      state[key] = key === "page" || key === "size" ? Math.max(1, parseInt(value, 10) || 1) : value;
    });
    return state;
  }

  function writeState(state, data) {
    var parts = [];
    for (var key in DEFAULTS) {
      var standard = key === "size" ? data.pageSize : DEFAULTS[key];
      if (String(state[key]) !== String(standard)) parts.push(key + "=" + encodeURIComponent(state[key]));
    }
    try {
      window.history.replaceState(null, "", window.location.pathname + (parts.length ? "?" + parts.join("&") : ""));
    } catch (err) {
      // some browsers refuse history changes on file:// pages; the view still works
    }
  }

  function pager(node, state, pages, count, total, go) {
    node.textContent = "";
    var first = (state.page - 1) * state.size;
    var shown = count ? (first + 1) + "–" + Math.min(count, first + state.size) + " of " + count : "none of " + total;
    var matching = count !== total ? " matching (" + total + " in all)" : "";
    var text = el("span", "muted", "images " + shown + matching + " · page " + state.page + " of " + pages);
    function button(label, page, disabled) {
      var b = el("button", "", label);
      b.type = "button";
      b.disabled = disabled;
      b.addEventListener("click", function () { go(page); });
      return b;
    }
    node.appendChild(button("« first", 1, state.page <= 1));
    node.appendChild(button("‹ previous", state.page - 1, state.page <= 1));
    node.appendChild(text);
    node.appendChild(button("next ›", state.page + 1, state.page >= pages));
    node.appendChild(button("last »", pages, state.page >= pages));
  }

  function start() {
    var source = document.getElementById("report-data");
    var cards = document.getElementById("cards");
    if (!source || !cards) return;
    var data = JSON.parse(source.textContent);
    var state = readState(data);
    var controls = {
      method: document.getElementById("f-method"),
      cls: document.getElementById("f-class"),
      channel: document.getElementById("f-channel"),  // only a region run's page has it
      role: document.getElementById("f-role"),
      outcome: document.getElementById("f-outcome"),
      status: document.getElementById("f-status"),
      sort: document.getElementById("f-sort"),
      order: document.getElementById("f-order"),
      size: document.getElementById("f-size")
    };
    if (!controls.channel) {  // a classifier's page: an address's channel filters nothing
      delete controls.channel;
      state.channel = "";
    }
    data.methods.forEach(function (m) { controls.method.appendChild(option(m, m)); });
    (data.channels || []).forEach(function (c) {
      if (controls.channel) controls.channel.appendChild(option(String(c.index), c.text));
    });
    data.classes.forEach(function (c) { controls.cls.appendChild(option(String(c.index), c.text)); });
    data.sortKeys.forEach(function (k) {
      var arrow = k.better === "lower" ? " (lower is better)" : k.better === "higher" ? " (higher is better)" : "";
      controls.sort.appendChild(option(k.key, k.label + arrow));
    });
    if ([25, 50, 100, 200].indexOf(data.pageSize) < 0) {
      controls.size.appendChild(option(String(data.pageSize), String(data.pageSize)));
    }
    for (var key in controls) {
      var known = [].some.call(controls[key].options, function (o) { return o.value === String(state[key]); });
      if (!known) state[key] = key === "size" ? data.pageSize : DEFAULTS[key];  // an address from another run
      controls[key].value = String(state[key]);
    }
    var top = document.getElementById("pager-top"), bottom = document.getElementById("pager-bottom");
    var count = document.getElementById("images-count");

    function render(scroll) {
      var rows = select(data, state);
      var pages = Math.max(1, Math.ceil(rows.length / state.size));
      state.page = Math.min(Math.max(1, state.page), pages);
      var slice = rows.slice((state.page - 1) * state.size, state.page * state.size);
      var fragment = document.createDocumentFragment();
      slice.forEach(function (row) { fragment.appendChild(block(row, data)); });
      if (!rows.length) {
        fragment.appendChild(el("p", "muted", data.images.length ? "No image matches these filters." : "No images."));
      }
      cards.textContent = "";
      cards.appendChild(fragment);
      cards.setAttribute("data-matching", String(rows.length));
      var all = data.images.length;
      if (count) count.textContent = rows.length === all ? String(all) : rows.length + " of " + all;
      pager(top, state, pages, rows.length, data.images.length, go);
      pager(bottom, state, pages, rows.length, data.images.length, go);
      writeState(state, data);
      if (scroll) document.getElementById("images").scrollIntoView();
    }

    function go(page) {
      state.page = page;
      render(true);
    }

    Object.keys(controls).forEach(function (key) {
      controls[key].addEventListener("change", function () {
        state[key] = key === "size" ? parseInt(controls[key].value, 10) : controls[key].value;
        state.page = 1;
        render(false);
      });
    });
    render(false);
  }

  start();
})();
