/* The search page's client: reads the static index that yimatong/search.py writes (the formats
   are described there). ES2017, no framework, no build step: it must run in WeChat's browser. */
(function () {
  'use strict';
  var meta = JSON.parse(document.getElementById('search-meta').textContent);
  var base = 'i/';
  var PAGE = 20;
  var form = document.getElementById('search-form');
  var input = document.getElementById('q');
  var statusEl = document.getElementById('search-status');
  var list = document.getElementById('results');
  var more = document.getElementById('more');
  var hint = document.getElementById('browse-hint');
  var FILTERS = ['city', 'industry', 'category', 'credit', 'status'];
  var LISTS = {city: 'city/', industry: 'industry/', category: 'category/'}; // static list pages
  var cache = new Map();
  var run = 0; // the latest search; older ones stop when they see it changed
  var shown = null;
  var industryName = new Map(meta.industries);

  function fetchFile(path, json) {
    if (!cache.has(path)) {
      cache.set(path, fetch(base + path).then(function (r) {
        if (!r.ok) throw new Error('missing ' + path);
        return json ? r.json() : r.arrayBuffer().then(function (b) { return new Uint8Array(b); });
      }));
    }
    return cache.get(path);
  }
  // A numbered file (s/, r/, c/, x/) by its content name, which its directory gives.
  function numbered(kind, n, json) {
    var g = Math.floor(n / meta.dir);
    return fetchFile('d/' + kind + '-' + g + '.' + meta.dirs[kind][g] + '.json', true).then(function (names) {
      return fetchFile(kind + '/' + n + '.' + names[n % meta.dir] + (json ? '.json' : '.bin'), json);
    });
  }

  // --- text, as yimatong.search.normalise_name and fnv1a -------------------------------------
  function normalise(text) {
    return text.normalize('NFKC').replace(/\s+/g, '').toLowerCase();
  }
  function fnv1a(text) {
    var h = 0x811c9dc5;
    for (var ch of text) h = Math.imul(h ^ ch.codePointAt(0), 0x01000193) >>> 0;
    return h;
  }

  // --- binary formats ---------------------------------------------------------------------
  function Reader(bytes) { this.b = bytes; this.o = 0; }
  Reader.prototype.v = function () {
    var x = 0, mul = 1, c;
    do { c = this.b[this.o++]; x += (c & 0x7f) * mul; mul *= 128; } while (c & 0x80);
    return x;
  };
  // An id set as a bitmap over all ids (one byte each: simple and fast at 100,000 enterprises).
  Reader.prototype.ids = function () {
    var kind = this.b[this.o++], set = new Uint8Array(meta.space), i;
    if (kind === 0) {
      for (var n = this.v(), id = -1; n > 0; n--) { id += this.v() + 1; set[id] = 1; }
    } else {
      var size = this.v(), at = this.o;
      for (i = 0; i < size * 8 && i < meta.space; i++) set[i] = (this.b[at + (i >> 3)] >> (i & 7)) & 1;
      this.o += size;
    }
    return set;
  };

  function shard(n) {
    return numbered('s', n, false).then(function (bytes) {
      var r = new Reader(bytes), out = new Map();
      for (var count = r.v(); count > 0; count--) {
        var bg = String.fromCodePoint(r.v(), r.v()), masks = new Map(), id = -1;
        for (var n = r.v(); n > 0; n--) { id += r.v() + 1; masks.set(id, r.v()); }
        out.set(bg, masks);
      }
      return out;
    });
  }
  // A bigram's postings: {masks: Map(id → position bits)} or, for a heavy one, {all, start}.
  function postings(bg) {
    if (meta.heavy[bg]) {
      return fetchFile('h/' + meta.heavy[bg] + '.bin').then(function (bytes) {
        var r = new Reader(bytes);
        return {all: r.ids(), start: r.ids()};
      });
    }
    return shard(fnv1a(bg) % meta.shards).then(function (s) {
      return s.has(bg) ? {masks: s.get(bg)} : null;
    });
  }

  // --- matching -----------------------------------------------------------------------------
  // A term's matches: Map(id → {tier: 0 name starts with it, 1 contains it, 2 in the place; at: where
  // in the name (earliest; 31 when not known); sure}). `sure` is false where a heavy bigram's place
  // was not checked: the name is checked when shown.
  async function nameMatches(term) {
    var chars = Array.from(term), at = cover(chars);
    var lists = await Promise.all(at.map(function (i) { return postings(chars[i] + chars[i + 1]); }));
    var out = new Map();
    if (lists.some(function (l) { return l === null; })) return out;
    var light = lists.filter(function (l) { return l.masks; });
    // Candidates come from the rarest bigram; heavy ones alone: from the first one's set.
    var driver = light.length ? light.reduce(function (a, b) { return a.masks.size <= b.masks.size ? a : b; }) : null;
    var ids = driver ? driver.masks.keys() : idsOf(lists[0].all);
    var heavy = lists.filter(function (l) { return !l.masks; }).length;
    for (var id of ids) {
      var bits = 0x7fffffff, unknown = false, ok = true;
      for (var k = 0; k < lists.length && ok; k++) {
        var l = lists[k];
        if (!l.masks) ok = l.all[id] === 1;
        else {
          var m = l.masks.get(id);
          if (m === undefined) ok = false;
          else if (m === 0) unknown = true; // a position past the mask's reach
          else bits &= m >>> at[k]; // bit p: this bigram starts at p + its place in the term
        }
      }
      if (!ok || bits === 0) continue;
      var first = lists[0]; // at[0] is 0
      var prefix = (bits & 1) === 1 && (first.masks !== undefined || first.start[id] === 1);
      // Heavy bigrams carry no positions: sure only alone, or first and pinned to the start.
      var sure = !unknown && (lists.length === 1 || !heavy ||
        (heavy === 1 && !first.masks && bits === 1 && first.start[id] === 1));
      var at0 = bits === 0x7fffffff ? 31 : 31 - Math.clz32(bits & -bits); // the lowest bit
      out.set(id, {tier: prefix ? 0 : 1, at: prefix ? 0 : at0, sure: sure});
    }
    return out;
  }
  // Which bigrams to read: every character covered, light bigrams rather than heavy ones, and
  // about half of them (their positions pin them, so they need not overlap: 南宁|化工).
  function cover(chars) {
    var at = [], covered = 0, last = chars.length - 2;
    function light(i) { return i >= 0 && i <= last && !meta.heavy[chars[i] + chars[i + 1]]; }
    for (var c = 0; c < chars.length; c++) {
      if (c < covered) continue;
      var i = light(c) ? c : light(c - 1) && c - 1 >= (at.length ? at[at.length - 1] + 1 : 0) ? c - 1 : Math.min(c, last);
      if (at.indexOf(i) < 0) at.push(i);
      covered = i + 2;
    }
    return at;
  }
  function idsOf(set) {
    var out = [];
    for (var i = 0; i < set.length; i++) if (set[i]) out.push(i);
    return out;
  }

  async function termMatches(term) {
    var found = Array.from(term).length >= 2 ? await nameMatches(term) : new Map();
    var places = meta.places.filter(function (p) { return p[0] === term; });
    for (var p of places) {
      var set = await filterSet(p[1], p[2]);
      for (var i = 0; i < set.length; i++) if (set[i] && !found.has(i)) found.set(i, {tier: 2, sure: true});
    }
    return {found: found, places: places};
  }

  function filterSet(kind, value) {
    return fetchFile('d/f.' + meta.dirs.f + '.json', true).then(function (names) {
      var name = kind + '-' + value;
      if (!Object.prototype.hasOwnProperty.call(names, name)) return new Uint8Array(meta.space); // no enterprise has it
      return fetchFile('f/' + name + '.' + names[name] + '.bin').then(function (b) { return new Reader(b).ids(); });
    });
  }

  // Codes: permit numbers sorted (c/) and sorted reversed (x/), each file's first key and count in
  // keys.json: a prefix is a range of files, fetched as far as results are shown.
  async function codeRange(folder, prefix) {
    var rows = await fetchFile(folder + '/keys.' + meta.keys[folder] + '.json', true), keys = frontDecode(rows);
    var lo = 0;
    while (lo + 1 < keys.length && keys[lo + 1] < prefix) lo++;
    var hi = lo;
    while (hi + 1 < keys.length && keys[hi + 1].startsWith(prefix)) hi++;
    var counts = rows.map(function (r) { return r[2]; });
    return {folder: folder, prefix: prefix, lo: lo, hi: hi, counts: counts};
  }
  async function codeFile(range, f) {
    var rows = await numbered(range.folder, f, true), prev = '', out = [];
    for (var row of rows) {
      prev = prev.slice(0, row[0]) + row[1];
      if (prev.startsWith(range.prefix)) out.push([prev, row[2]]);
    }
    return out;
  }
  function frontDecode(rows) {
    var prev = '';
    return rows.map(function (row) { prev = prev.slice(0, row[0]) + row[1]; return prev; });
  }
  // Permit numbers starting (8+ characters) or ending (6+) with the code; a long range of files
  // is read lazily unless filters need every id.
  async function codeMatches(code, all) {
    var found = new Map(), rev = Array.from(code).reverse().join(''), feed = null, total = 0;
    var suffix = [], tail = [];
    var x = await codeRange('x', rev);
    for (var f = x.lo; f <= x.hi; f++) suffix = suffix.concat(await codeFile(x, f));
    for (var row of suffix) {
      if (!Array.from(row[0]).reverse().join('').startsWith(code)) tail.push(row[1]);
    }
    if (code.length >= 8) {
      var c = await codeRange('c', code);
      var edges = await Promise.all([codeFile(c, c.lo), codeFile(c, c.hi)]);
      var middle = c.counts.slice(c.lo + 1, Math.max(c.lo + 1, c.hi)).reduce(function (a, b) { return a + b; }, 0);
      total = edges[0].length + (c.hi > c.lo ? edges[1].length : 0) + middle;
      var rows = edges[0];
      var next = c.lo + 1;
      if (all) {
        for (; next < c.hi; next++) rows = rows.concat(await codeFile(c, next));
        if (c.hi > c.lo) rows = rows.concat(edges[1]);
        next = c.hi + 1;
      }
      rows.forEach(function (r, n) { found.set(r[1], {tier: r[0] === code ? 0 : 1, sure: true, rank: n}); });
      if (next <= c.hi) {
        feed = async function () { // the next file of the range, then the suffix matches
          if (next > c.hi) return tail.splice(0);
          var more = await codeFile(c, next++);
          return more.map(function (r) { return r[1]; });
        };
      }
    }
    total += tail.length;
    if (!feed) tail.forEach(function (id, n) { found.set(id, {tier: 2, sure: true, rank: n}); });
    return {found: found, feed: feed, total: feed ? total : found.size};
  }

  // --- a search -------------------------------------------------------------------------------
  function state() {
    var s = {q: input.value.trim()};
    for (var f of FILTERS) s[f] = form.elements[f].value;
    return s;
  }

  async function search(s) {
    var me = ++run;
    var filters = FILTERS.filter(function (f) { return s[f]; });
    hint.hidden = true;
    list.textContent = '';
    more.hidden = true;
    if (!s.q && !filters.length) { say(''); return; }
    var only = filters.length === 1 && LISTS[filters[0]];
    if (!s.q && only) { // a whole city (industry, category) is a static list page, not a download
      var select = form.elements[filters[0]];
      browseHint(select.options[select.selectedIndex].text, '../' + LISTS[filters[0]] + s[filters[0]] + '/');
      say('');
      return;
    }
    say('正在搜索…', true);
    try {
      var result = await matches(s, filters);
      if (me !== run) return;
      shown = {s: s, order: result.order, found: result.found, next: 0, terms: result.terms, approx: result.approx,
        feed: result.feed, total: result.total, me: me};
      if (result.places.length === 1 && result.places[0][1] === 'city' && !filters.length) {
        var c = meta.cities.find(function (x) { return x[0] === result.places[0][2]; });
        browseHint(c[1] + '（' + c[2] + ' 家）', '../city/' + c[0] + '/');
      }
      await showMore();
    } catch (e) {
      if (me === run) say('搜索出错：' + (String(e.message).indexOf('missing') === 0 ? '搜索索引已更新，请刷新本页。' : e.message));
    }
  }

  async function matches(s, filters) {
    var found = null, terms = [], places = [], feed = null, total = -1;
    var code = s.q.normalize('NFKC').replace(/[\s-]/g, '').toUpperCase();
    if (/^[0-9A-Z]{6,}$/.test(code)) { // a USCC or permit number, whole or in part, spaces or not
      var byCode = await codeMatches(code, filters.length > 0);
      found = byCode.found;
      feed = byCode.feed;
      total = byCode.total;
    }
    var words = s.q.normalize('NFKC').toLowerCase().split(/\s+/).filter(Boolean);
    if (words.length && (!found || (!found.size && !feed))) {
      if (found) words = [code.toLowerCase()]; // a code that is not one: look for it in names
      found = null;
      for (var w of words) {
        var t = await termMatches(w);
        terms.push(w);
        places = places.concat(t.places);
        found = found ? intersect(found, t.found) : t.found;
      }
    }
    var sets = await Promise.all(filters.map(function (f) { return filterSet(f, s[f]); }));
    var order = [];
    if (found) {
      found.forEach(function (v, id) { if (sets.every(function (set) { return set[id]; })) order.push(id); });
    } else {
      for (var i = 0; i < meta.space; i++) if (sets.every(function (set) { return set[i]; })) order.push(i);
      found = new Map();
    }
    // By tier, then codes in code order (their rank), names by where the query is in them; then by id
    // (a hash of the permit number: no order a reader would look for, but a stable one).
    var none = {tier: 0, at: 0};
    order.sort(function (a, b) {
      var x = found.get(a) || none, y = found.get(b) || none;
      return x.tier - y.tier || (x.rank === undefined ? (x.at || 0) - (y.at || 0) : x.rank - y.rank) || a - b;
    });
    var approx = order.some(function (id) { return found.has(id) && !found.get(id).sure; });
    return {order: order, found: found, terms: terms, places: places, approx: approx, feed: feed,
      total: feed ? total : order.length};
  }
  function intersect(a, b) {
    var out = new Map();
    a.forEach(function (v, id) {
      var w = b.get(id);
      if (w) out.set(id, {tier: Math.max(v.tier, w.tier === 2 ? 2 : v.tier), at: v.at, sure: v.sure && w.sure});
    });
    return out;
  }

  // [permit, name, city, county, industry code, category, status, credit] of an id.
  function record(id) {
    return numbered('r', Math.floor(id / meta.span), true).then(function (rows) {
      var offset = id % meta.span, row = rows.find(function (r) { return r[0] === offset; });
      if (!row) throw new Error('missing record ' + id);
      return row.slice(1);
    });
  }

  // Shows the next page; names of unsure matches are checked first, and failures dropped.
  async function showMore() {
    var st = shown, me = st.me, picked = [];
    while (picked.length < PAGE && (st.next < st.order.length || st.feed)) {
      if (st.next >= st.order.length) { // a long code range: its next file
        var extra = await st.feed();
        if (!extra.length || st.order.length + extra.length >= st.total) st.feed = null;
        st.order = st.order.concat(extra);
        continue;
      }
      var ids = st.order.slice(st.next, st.next + PAGE - picked.length);
      st.next += ids.length;
      var recs = await Promise.all(ids.map(record));
      if (me !== run) return;
      for (var i = 0; i < ids.length; i++) {
        var f = st.found.get(ids[i]);
        if (f && !f.sure && !st.terms.every(function (t) { return normalise(recs[i][1]).indexOf(t) >= 0; })) {
          st.order.splice(st.order.indexOf(ids[i]), 1); // not a match after all: the name says so
          st.next--;
          st.total--;
          continue;
        }
        picked.push(recs[i]);
      }
    }
    if (me !== run) return;
    if (st.terms.length === 1 && list.childElementCount === 0) { // a whole-name match leads the first page
      var whole = picked.filter(function (r) { return normalise(r[1]) === st.terms[0]; });
      picked = whole.concat(picked.filter(function (r) { return whole.indexOf(r) < 0; }));
    }
    for (var rec of picked) list.appendChild(item(rec));
    var total = st.total;
    if (!total) {
      var short = st.terms.some(function (t) { return Array.from(t).length < 2; });
      say('没有找到与“' + (st.s.q || '所选条件') + '”相符的单位。' +
        (short ? '名称请至少输入两个字。' : st.s.q ? '请检查名称或编号，或减少筛选条件。' : ''));
    } else {
      var exact = !st.approx || (st.next >= st.order.length && !st.feed);
      say('找到' + (exact ? ' ' : '约 ') + total + ' 家，显示前 ' + Math.min(st.next, total) + ' 家。');
    }
    more.hidden = st.next >= st.order.length && !st.feed;
  }

  function item(rec) {
    var li = document.createElement('li');
    var a = document.createElement('a');
    a.href = '../P/' + rec[0] + '/';
    a.textContent = rec[1];
    var status = meta.statuses[rec[6]];
    var badge = document.createElement('span');
    badge.className = 'badge tone-' + status[2];
    badge.textContent = status[1];
    var place = meta.cities[rec[2]][1] + (rec[3] >= 0 ? ' ' + meta.counties[rec[3]][0] : '');
    var line = document.createElement('span');
    line.className = 'muted';
    var credit = rec[7] >= 0 ? ' · 信用：' + meta.credits[rec[7]] : '';
    line.textContent = (industryName.get(rec[4]) || rec[4]) + ' · ' + (meta.categories[rec[5]] || [''])[0] + credit + ' · ' + rec[0];
    var where = document.createElement('span');
    where.className = 'place';
    where.textContent = place;
    li.append(a, ' ', badge, document.createElement('br'), where, ' ', line);
    return li;
  }

  // data-state on the form: 'busy' while a search runs, then 'done' (what the tests wait for).
  function say(text, busy) {
    statusEl.textContent = text;
    form.setAttribute('data-state', busy ? 'busy' : 'done');
  }
  function browseHint(label, href) {
    hint.textContent = '';
    var a = document.createElement('a');
    a.href = href;
    a.textContent = '浏览' + label + '的全部单位（列表页）';
    hint.append(a);
    hint.hidden = false;
  }

  // --- the page ---------------------------------------------------------------------------------
  function fromUrl() {
    var params = new URLSearchParams(location.search);
    input.value = params.get('q') || '';
    for (var f of FILTERS) form.elements[f].value = params.get(f) || '';
  }
  function go(push) {
    var s = state(), params = new URLSearchParams();
    Object.keys(s).forEach(function (k) { if (s[k]) params.set(k, s[k]); });
    var url = location.pathname + (String(params) ? '?' + params : '');
    if (url !== location.pathname + location.search) history[push ? 'pushState' : 'replaceState'](null, '', url);
    search(s);
  }
  var timer = 0;
  form.addEventListener('submit', function (e) { e.preventDefault(); clearTimeout(timer); go(true); });
  input.addEventListener('input', function () { clearTimeout(timer); timer = setTimeout(function () { go(false); }, 350); });
  form.addEventListener('change', function (e) { if (e.target !== input) go(true); });
  more.addEventListener('click', function () {
    if (!shown) return;
    form.setAttribute('data-state', 'busy');
    showMore().then(null, function (e) { say('搜索出错：' + e.message); });
  });
  window.addEventListener('popstate', function () { fromUrl(); search(state()); });
  document.documentElement.classList.add('js');
  fromUrl();
  search(state());
})();
