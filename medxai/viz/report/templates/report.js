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


  /* The viewer's arrays: byte planes (low bytes first) of `itemsize`-byte unsigned integers, the
     differences along rows of `rowLength` when `delta` (medxai.viz.report.viewer.pack). */
  function unplane(bytes, itemsize, delta, rowLength) {
    var n = bytes.length / itemsize;
    var out = itemsize === 2 ? new Uint16Array(n) : new Uint8Array(n);
    var i;
    if (itemsize === 2) {
      for (i = 0; i < n; i++) out[i] = bytes[i] | (bytes[n + i] << 8);
    } else {
      out.set(bytes.subarray(0, n));
    }
    if (delta) {
      for (var start = 0; start < n; start += rowLength) {
        for (i = start + 1; i < start + rowLength; i++) out[i] = out[i] + out[i - 1];  // wraps as unsigned
      }
    }
    return out;
  }

  /* One pixel of a picture: the windowed grey (0..1) with the map's colour blended over it, as the run's
     overlays are drawn (medxai.viz.render.overlay: opacity ramps up to `alpha` at shown value 0.5). */
  function blend(grey, shown, lut, alpha) {
    var weight = alpha * Math.min(1, shown / 127.5);
    return [
      (1 - weight) * grey[0] * 255 + weight * lut[3 * shown],
      (1 - weight) * grey[1] * 255 + weight * lut[3 * shown + 1],
      (1 - weight) * grey[2] * 255 + weight * lut[3 * shown + 2]
    ];
  }

  if (typeof module !== "undefined" && module.exports) {
    module.exports = {
      select: select, visibleMaps: visibleMaps, sortValue: sortValue, DEFAULTS: DEFAULTS, unplane: unplane, blend: blend
    };
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


  // ---- the viewer: the source, windowed, with each map blended on top; one slice, opacity and window
  //      for all the maps of an image (linked), orthogonal views through one point for volumes

  function decode(text, itemsize, rowLength) {
    var binary = atob(text.slice(2));
    var bytes = new Uint8Array(binary.length);
    for (var i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
    var stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("deflate"));
    return new Response(stream).arrayBuffer().then(function (buffer) {
      return unplane(new Uint8Array(buffer), itemsize, text.slice(0, 2) === "d:", rowLength);
    });
  }

  function cached(holder, key, text, itemsize, rowLength) {
    if (!holder["_" + key]) holder["_" + key] = decode(text, itemsize, rowLength);
    return holder["_" + key];
  }

  function lutOf(data) {
    if (!data._lut) {
      data._lut = new Uint8Array(768);
      for (var i = 0; i < 768; i++) data._lut[i] = parseInt(data.lut.substr(2 * i, 2), 16);
    }
    return data._lut;
  }

  /* The plane through the point `at` ([z, y, x]) seen along `axis` (0: axial, 1: coronal, 2: sagittal):
     its size and the volume index of its pixel (u, v). */
  function plane(dims, axis, at) {
    var d = dims[0], h = dims[1], w = dims[2];
    if (axis === 0) return { w: w, h: h, index: function (u, v) { return (at[0] * h + v) * w + u; } };
    if (axis === 1) return { w: w, h: d, index: function (u, v) { return ((d - 1 - v) * h + at[1]) * w + u; } };
    return { w: h, h: d, index: function (u, v) { return ((d - 1 - v) * h + u) * w + at[2]; } };
  }

  /* Draws the plane of `axis` through state.at onto `canvas` (sized in device pixels to its CSS box):
     the voxels as blocks (no smoothing), then a 1-pixel cross where the other two planes cut it. */
  function drawPlane(canvas, view, source, shown, mask, state, axis, lut) {
    var p = plane(view.dims, axis, state.at);
    var native = canvas._native || (canvas._native = document.createElement("canvas"));
    native.width = p.w;
    native.height = p.h;
    var picture = native.getContext("2d").createImageData(p.w, p.h);
    var window_ = view.windows[state.window];
    var low = window_.c - window_.w / 2, voxels = view.dims[0] * view.dims[1] * view.dims[2];
    var grey = [0, 0, 0];
    for (var v = 0; v < p.h; v++) {
      for (var u = 0; u < p.w; u++) {
        var k = p.index(u, v);
        for (var c = 0; c < 3; c++) {
          var value = view.offset + view.scale * source[(view.ch === 3 ? c : 0) * voxels + k];
          var g = Math.min(1, Math.max(0, (value - low) / window_.w));
          grey[c] = view.invert ? 1 - g : g;
        }
        var rgb = blend(grey, shown[k], lut, state.opacity);
        var o = 4 * (v * p.w + u);
        picture.data[o] = rgb[0];
        picture.data[o + 1] = rgb[1];
        picture.data[o + 2] = rgb[2];
        picture.data[o + 3] = 255;
      }
    }
    if (mask && state.outline) {  // the mask's outline: mask pixels of the plane with a neighbour outside
      for (v = 0; v < p.h; v++) {
        for (u = 0; u < p.w; u++) {
          if (!mask[p.index(u, v)]) continue;
          var edge = u === 0 || v === 0 || u === p.w - 1 || v === p.h - 1 || !mask[p.index(u - 1, v)] ||
            !mask[p.index(u + 1, v)] || !mask[p.index(u, v - 1)] || !mask[p.index(u, v + 1)];
          if (!edge) continue;
          o = 4 * (v * p.w + u);
          picture.data[o] = 0;
          picture.data[o + 1] = 229;
          picture.data[o + 2] = 255;
        }
      }
    }
    native.getContext("2d").putImageData(picture, 0, 0);
    var ratio = window.devicePixelRatio || 1;
    var width = Math.round(parseFloat(canvas.style.width) * ratio), height = Math.round(parseFloat(canvas.style.height) * ratio);
    if (canvas.width !== width) canvas.width = width;
    if (canvas.height !== height) canvas.height = height;
    var context = canvas.getContext("2d");
    context.imageSmoothingEnabled = false;
    context.drawImage(native, 0, 0, width, height);
    if (view.dims[0] > 1) {  // the cross: where the other two planes cut this one, through the voxel's centre
      var across = axis === 0 ? [state.at[2], state.at[1]] : axis === 1 ? [state.at[2], view.dims[0] - 1 - state.at[0]]
        : [state.at[1], view.dims[0] - 1 - state.at[0]];
      var x = Math.floor((across[0] + 0.5) * width / p.w), y = Math.floor((across[1] + 0.5) * height / p.h);
      context.fillStyle = "rgba(0, 229, 255, 0.8)";
      context.fillRect(x, 0, Math.max(1, Math.round(ratio)), height);
      context.fillRect(0, y, width, Math.max(1, Math.round(ratio)));
    }
  }

  /* CSS size of a plane: the longer side 240 px (2D: 220), the voxel spacing kept. */
  function cssSize(view, axis) {
    var s = view.spacing, d = view.dims;
    var mm = axis === 0 ? [d[2] * s[2], d[1] * s[1]] : axis === 1 ? [d[2] * s[2], d[0] * s[0]] : [d[1] * s[1], d[0] * s[0]];
    var box = d[0] > 1 ? 240 : 220, scale = box / Math.max(mm[0], mm[1]);
    return [Math.max(1, Math.round(mm[0] * scale)), Math.max(1, Math.round(mm[1] * scale))];
  }

  function slider(label, min, max, value) {
    var wrap = el("label", "v-control", label + " ");
    var input = el("input");
    input.type = "range";
    input.min = String(min);
    input.max = String(max);
    input.value = String(value);
    wrap.appendChild(input);
    return { wrap: wrap, input: input };
  }

  function viewer(image, maps, data) {
    var view = image.view;
    var shown = maps.filter(function (m) { return m.status === "ok" && m.view; });
    var box = el("div", "viewer");
    if (!view || !shown.length) return null;
    if (typeof DecompressionStream === "undefined") {
      box.appendChild(el("p", "small muted", "The viewer needs a browser with DecompressionStream " +
        "(Chrome 80, Firefox 113, Safari 16.4 or later); the thumbnails below show every map."));
      return box;
    }
    var volume = view.dims[0] > 1;
    var first = shown[0].view.peak;
    var state = { at: first.slice(), opacity: view.alpha, window: 0, outline: true };
    var controls = el("div", "v-controls");
    var slice = volume ? slider("slice", 0, view.dims[0] - 1, state.at[0]) : null;
    var sliceLabel = el("span", "v-slice-label num");
    if (slice) {
      slice.input.className = "v-slice";
      slice.wrap.appendChild(sliceLabel);
      controls.appendChild(slice.wrap);
    }
    var opacity = slider("map opacity", 0, 100, Math.round(100 * state.opacity));
    opacity.input.className = "v-opacity";
    controls.appendChild(opacity.wrap);
    var windowLabel = el("label", "v-control", "window ");
    var windowSelect = el("select", "v-window");
    view.windows.forEach(function (w, i) {
      windowSelect.appendChild(option(String(i), w.name + " (" + +w.c.toPrecision(6) + " / " + +w.w.toPrecision(6) + ")"));
    });
    windowLabel.appendChild(windowSelect);
    controls.appendChild(windowLabel);
    if (view.mask) {
      var outlineLabel = el("label", "v-control");
      var outlineBox = el("input", "v-outline");
      outlineBox.type = "checkbox";
      outlineBox.checked = true;
      outlineLabel.appendChild(outlineBox);
      outlineLabel.appendChild(document.createTextNode(" mask outline"));
      outlineBox.addEventListener("change", function () {
        state.outline = outlineBox.checked;
        draw();
      });
      controls.appendChild(outlineLabel);
    }
    var peak = el("button", "", volume ? "to the first map's peak" : "reset");
    peak.type = "button";
    controls.appendChild(peak);
    box.appendChild(controls);
    var grid = el("div", "v-grid");
    box.appendChild(grid);
    var axes = volume ? [0, 1, 2] : [0];
    var names = ["axial", "coronal", "sagittal"];
    var panels = shown.map(function (m) {
      var column = el("div", "v-map");
      var title = el("div", "small");
      title.appendChild(el("b", "", m.method));
      title.appendChild(document.createTextNode(" · " + (m.caption || "class " + classText(data, m["class"])) + " "));
      if (volume) {  // each map's own peak, one click away
        var own = el("button", "v-peak small", "peak: slice " + view.z[m.view.peak[0]]);
        own.type = "button";
        own.addEventListener("click", function () {
          state.at = m.view.peak.slice();
          draw();
        });
        title.appendChild(own);
      }
      column.appendChild(title);
      var planes = el("div", "v-planes");
      column.appendChild(planes);
      var canvases = axes.map(function (axis) {
        var canvas = el("canvas", "v-plane v-" + names[axis]);
        var size = cssSize(view, axis);
        canvas.style.width = size[0] + "px";
        canvas.style.height = size[1] + "px";
        canvas.setAttribute("title", names[axis] + (volume ? ": click to move the cross, wheel to change slice" : ""));
        planes.appendChild(canvas);
        return canvas;
      });
      grid.appendChild(column);
      return { map: m, canvases: canvases };
    });
    var status = el("p", "small muted v-status", "decoding…");
    box.appendChild(status);
    var lut = lutOf(data);
    var voxels = view.dims[0] * view.dims[1] * view.dims[2];
    var ready = null;

    function draw() {
      if (!ready) return;
      if (slice) {
        slice.input.value = String(state.at[0]);
        sliceLabel.textContent = " " + state.at[0] + " of " + (view.dims[0] - 1) + " (source slice " +
          view.z[state.at[0]] + ")";
      }
      panels.forEach(function (panel, i) {
        panel.canvases.forEach(function (canvas, j) {
          drawPlane(canvas, view, ready.source, ready.maps[i], ready.mask, state, axes[j], lut);
        });
      });
      status.textContent = volume ? "point z " + state.at[0] + ", y " + state.at[1] + ", x " + state.at[2] +
        " (viewer voxels; each " + view.factors.join("×") + " source voxels)" : "";
    }

    function clampAt() {
      for (var a = 0; a < 3; a++) state.at[a] = Math.min(view.dims[a] - 1, Math.max(0, state.at[a]));
    }

    if (slice) {
      slice.input.addEventListener("input", function () {
        state.at[0] = parseInt(slice.input.value, 10) || 0;
        draw();
      });
    }
    opacity.input.addEventListener("input", function () {
      state.opacity = (parseInt(opacity.input.value, 10) || 0) / 100;
      draw();
    });
    windowSelect.addEventListener("change", function () {
      state.window = parseInt(windowSelect.value, 10) || 0;
      draw();
    });
    peak.addEventListener("click", function () {
      state.at = first.slice();
      draw();
    });
    panels.forEach(function (panel) {
      panel.canvases.forEach(function (canvas, j) {
        var axis = axes[j];
        canvas.addEventListener("click", function (event) {
          if (!volume) return;
          var rect = canvas.getBoundingClientRect(), p = plane(view.dims, axis, state.at);
          var u = Math.floor((event.clientX - rect.left) / rect.width * p.w);
          var v = Math.floor((event.clientY - rect.top) / rect.height * p.h);
          if (axis === 0) { state.at[2] = u; state.at[1] = v; }
          if (axis === 1) { state.at[2] = u; state.at[0] = view.dims[0] - 1 - v; }
          if (axis === 2) { state.at[1] = u; state.at[0] = view.dims[0] - 1 - v; }
          clampAt();
          draw();
        });
        if (volume && axis === 0) {
          canvas.addEventListener("wheel", function (event) {
            event.preventDefault();
            state.at[0] += event.deltaY > 0 ? 1 : -1;
            clampAt();
            draw();
          }, { passive: false });
        }
      });
    });
    var rowLength = view.dims[2];
    var parts = [cached(view, "src", view.src, 2, rowLength)];
    parts.push(view.mask ? cached(view, "mask", view.mask, 1, rowLength) : Promise.resolve(null));
    Promise.all(parts.concat(shown.map(function (m) {
      return cached(m.view, "map", m.view.map, 1, rowLength);
    }))).then(function (arrays) {
      if (arrays[0].length !== view.ch * voxels) throw new Error("the source's size does not match its shape");
      ready = { source: arrays[0], mask: arrays[1], maps: arrays.slice(2) };
      box.setAttribute("data-ready", "1");
      draw();
    }).catch(function (err) {
      status.textContent = "The viewer could not decode its data: " + err;
    });
    return box;
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
    var panel = viewer(image, row.maps, data);
    if (panel) article.appendChild(panel);
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
