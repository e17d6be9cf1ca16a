// The CLIP tokenizer as transformers runs sdlab-tiny's (NFC, whitespace runs to one space, lower case; CLIP's
// split; byte-level characters; BPE with "</w>" ending each word), padded to max_length as the pipeline does.
// >>> const tok = sdlabTokenizer.make(live.tokenizer);
// >>> tok.encode("a red circle").ids.slice(0, 5)   // [bos, a, red, circle, eos]; .words: [{text, positions}]
(function (root) {
  "use strict";
  const SPLIT = /<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|\p{L}+|\p{N}|[^\s\p{L}\p{N}]+/gu;

  function byteChars() {  // GPT-2 / CLIP's reversible byte -> printable character map
    const keep = [];
    for (let b = 33; b <= 126; b++) keep.push(b);
    for (let b = 161; b <= 172; b++) keep.push(b);
    for (let b = 174; b <= 255; b++) keep.push(b);
    const chars = new Array(256);
    let extra = 0;
    for (let b = 0; b < 256; b++) chars[b] = String.fromCharCode(keep.includes(b) ? b : 256 + extra++);
    return chars;
  }

  function make(tables) {
    const rank = new Map(tables.merges.map((m, i) => [m, i]));
    const chars = byteChars();
    const utf8 = new TextEncoder();

    function bpe(word) {  // keep merging the adjacent pair listed first until none is listed
      const bytes = Array.from(utf8.encode(word), (b) => chars[b]);
      let pieces = [...bytes.slice(0, -1), bytes[bytes.length - 1] + "</w>"];
      while (pieces.length > 1) {
        let best = -1, bestRank = Infinity;
        for (let i = 0; i + 1 < pieces.length; i++) {
          const r = rank.get(pieces[i] + " " + pieces[i + 1]);
          if (r !== undefined && r < bestRank) { best = i; bestRank = r; }
        }
        if (best < 0) break;
        pieces = [...pieces.slice(0, best), pieces[best] + pieces[best + 1], ...pieces.slice(best + 2)];
      }
      return pieces.map((p) => tables.vocab[p] ?? tables.eos);
    }

    function encode(prompt) {
      const text = prompt.normalize("NFC").replace(/\s+/gu, " ").toLowerCase();
      const ids = [tables.bos], words = [];
      for (const match of text.matchAll(SPLIT)) {
        const piece = match[0];
        const pieceIds = piece === "<|startoftext|>" ? [tables.bos] : piece === "<|endoftext|>" ? [tables.eos] : bpe(piece);
        const room = tables.max_length - 1 - ids.length;  // the end token always fits
        const kept = pieceIds.slice(0, Math.max(room, 0));
        if (kept.length) words.push({ text: piece, positions: kept.map((_, i) => ids.length + i) });
        ids.push(...kept);
      }
      ids.push(tables.eos);
      while (ids.length < tables.max_length) ids.push(tables.pad);
      return { ids, words };
    }

    return { encode };
  }

  const api = { make };
  if (typeof module !== "undefined" && module.exports) module.exports = api;
  else root.sdlabTokenizer = api;
})(this);
