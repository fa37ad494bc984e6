// Customers (migrated from users.js).

export type User = {
  id: number;
  name: string;
  email?: string;
};

export function displayName(user: User): string {
  return user.name.trim() || user.email.split("@")[0];
}

export function byId(users: User[], id: string): User | undefined {
  return users.find((user) => user.id === Number(id));
}

export function initials(user: User): string {
  return user.name
    .split(" ")
    .map((part) => part[0].toUpperCase())
    .join("");
}

export function sortByName(users) {
  return [...users].sort((a, b) => a.name.localeCompare(b.name));
}
