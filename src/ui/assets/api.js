// Calls to the API, with the token entered on the sign-in page (kept in local storage).

const TOKEN_KEY = "kairos.token";

export const token = () => localStorage.getItem(TOKEN_KEY);

export function setToken(value) {
  if (value) localStorage.setItem(TOKEN_KEY, value);
  else localStorage.removeItem(TOKEN_KEY);
}

// A refusal by the API: its status, and its error body's code, message and field.
export class ApiFailure extends Error {
  constructor(status, body) {
    const error = (body && body.error) || {};
    super(error.message || `the server answered ${status}`);
    this.status = status;
    this.code = error.code;
    this.field = error.field;
    this.items = error.items;
  }
}

// Calls the API; resolves with the answer's JSON, or rejects with an ApiFailure.
export async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  const saved = token();
  if (saved) headers.Authorization = `Bearer ${saved}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    cache: "no-store",
  });
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = { text }; }
  if (response.status === 401) setToken(null);
  if (!response.ok) throw new ApiFailure(response.status, data);
  return data;
}
