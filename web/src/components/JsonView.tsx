export function JsonView({ value }: { value: unknown }) {
  return <pre className="argv">{JSON.stringify(value, null, 2)}</pre>;
}
