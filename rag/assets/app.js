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
  document.addEventListener("keydown", (event) => {
    const mark = target(event);
    if (!mark || (event.key !== "Enter" && event.key !== " ")) return;
    event.preventDefault();
    open(keyOf(mark));
  }, true);
}
