/** One log line with ANSI colours, rendered as spans (no HTML injection). */
import { memo } from "react";
import Anser from "anser";

export const AnsiLine = memo(function AnsiLine({ text }: { text: string }) {
  const clean = text.endsWith("\r") ? text.slice(0, -1) : text;
  if (!clean.includes("\u001b[")) return <>{clean}</>;
  const parts = Anser.ansiToJson(clean, { use_classes: true, remove_empty: true });
  return (
    <>
      {parts.map((p, i) => {
        const cls = [p.fg && `${p.fg}-fg`, p.bg && `${p.bg}-bg`, ...p.decorations.map((d) => `ansi-${d}`)].filter(Boolean).join(" ");
        return cls ? (
          <span key={i} className={cls}>
            {p.content}
          </span>
        ) : (
          <span key={i}>{p.content}</span>
        );
      })}
    </>
  );
});
