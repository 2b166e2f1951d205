() => {
  // Citation markers ([n] in answers, cards in the sources panel) carry a class cite-key-<turn>-<n>
  // (the chat's sanitizer keeps classes but drops data-* attributes).
  // A click hands the key to a hidden textbox and presses a hidden button, so Python renders the
  // sources panel: all document text stays escaped on the server side.
  const open = (key) => {
    const box = document.querySelector("#cite-key textarea, #cite-key input");
    const button = document.querySelector("#cite-open");
    if (!box || !button) return;
    box.value = key;
    box.dispatchEvent(new Event("input", { bubbles: true }));
    setTimeout(() => button.click(), 0);
  };
  const target = (event) => (event.target instanceof Element ? event.target.closest("[class*='cite-key-']") : null);
  const keyOf = (el) => [...el.classList].find((name) => name.startsWith("cite-key-"));
  document.addEventListener("click", (event) => {
    const mark = target(event);
    if (!mark) return;
    event.preventDefault();
    event.stopPropagation();
    document.querySelectorAll(".cite.active").forEach((el) => el.classList.remove("active"));
    if (mark.classList.contains("cite")) mark.classList.add("active");
    open(keyOf(mark));
  }, true);
  // The page is Chinese whatever the browser's language: Gradio's own texts ("Drop File Here",
  // "Click to Upload", …) follow its i18n locale, which it takes from the browser. Its core module
  // (already loaded; the same instance) exports changeLocale.
  const core = performance.getEntriesByType("resource").map((e) => e.name).find((url) => /\/assets\/core-[^/]*\.js$/.test(url));
  if (core) import(core).then((m) => m.changeLocale && m.changeLocale("zh-CN")).catch(() => {});
  // Gradio labels each chat message "<role>'s message: <raw markup>", which a screen reader reads
  // tag by tag: relabel it with the text as shown, each citation as its own label ("引用 1：标题").
  const spoken = (el) => {
    const copy = el.cloneNode(true);
    copy.querySelectorAll(".cite[title]").forEach((c) => c.replaceWith(`（${c.getAttribute("title")}）`));
    return copy.textContent.replace(/\s+/g, " ").trim();
  };
  const relabel = () => {
    // The chat's sanitizer keeps a marker's title ("引用 1：标题") but may drop its aria-label.
    document.querySelectorAll("#chat .cite[title]:not([aria-label])").forEach((c) => c.setAttribute("aria-label", c.title));
    document.querySelectorAll("#chat [aria-label*='message:'], #chat [data-relabeled]").forEach((el) => {
      el.setAttribute("data-relabeled", "");
      const bot = el.closest("[data-testid='bot']") || el.querySelector("[data-testid='bot']");
      const label = (bot ? "回答：" : "问题：") + spoken(el);
      if (el.getAttribute("aria-label") !== label) el.setAttribute("aria-label", label);
    });
  };
  // Gradio 6 titles each group of toasts by its type, in English whatever the locale and the title given.
  const TOAST_TITLES = { Warning: "提示", Error: "错误", Info: "消息", Success: "完成" };
  const retitle = () => {
    document.querySelectorAll(".toast-title").forEach((title) => {
      const text = [...title.childNodes].find((n) => n.nodeType === Node.TEXT_NODE && n.data.trim());
      const chinese = text && TOAST_TITLES[text.data.trim()];
      if (chinese) text.data = chinese + " ";
    });
  };
  // The system file picker offers the kinds the knowledge base takes (Python fills in the list). Only the
  // picker: Gradio's file_types would also refuse in English, so the server says why in Chinese instead.
  const UPLOAD_ACCEPT = "__UPLOAD_ACCEPT__";
  const filter = () => {
    document.querySelectorAll("#upload input[type=file]").forEach((input) => {
      if (input.accept !== UPLOAD_ACCEPT) input.accept = UPLOAD_ACCEPT;
    });
  };
  filter();
  new MutationObserver(() => { relabel(); retitle(); filter(); }).observe(document.body, { subtree: true, childList: true, characterData: true,
                                                          attributes: true, attributeFilter: ["aria-label", "accept"] });
  document.addEventListener("keydown", (event) => {
    const mark = target(event);
    if (!mark || (event.key !== "Enter" && event.key !== " ")) return;
    event.preventDefault();
    open(keyOf(mark));
  }, true);
}
